#include <conveyor/worker/worker_main.hpp>

#include <iostream>

namespace conveyor::worker {

int worker_main(const std::vector<std::string>&) {
    std::cerr << "conveyor worker: not available in this build yet\n";
    return 2;
}

}  // namespace conveyor::worker

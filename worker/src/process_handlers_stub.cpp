// Placeholder until exec_handler.cpp, pipe_pool.cpp and handler_file.cpp exist (issue 4).
#include <conveyor/worker/process_handlers.hpp>

#include <stdexcept>

namespace conveyor::worker {

client::task_handler make_exec_handler(boost::asio::any_io_executor, exec_options) {
    throw std::runtime_error("--exec is not available in this build yet");
}

std::unique_ptr<pipe_pool> make_pipe_pool(boost::asio::any_io_executor, pipe_options) {
    throw std::runtime_error("--pipe is not available in this build yet");
}

handler_file load_handler_file(const std::string&) {
    throw std::runtime_error("--handlers is not available in this build yet");
}

}  // namespace conveyor::worker

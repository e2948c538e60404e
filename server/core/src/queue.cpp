#include "queue.hpp"

#include <algorithm>

namespace conveyor::core::detail {

std::deque<task*>& queue::fifo_for(const task* t) {
    auto& fifo = ready[t->priority];
    if (!fifo) fifo = std::make_unique<std::deque<task*>>();
    return *fifo;
}

void queue::push_back(task* t) {
    fifo_for(t).push_back(t);
    ++ready_count;
}

void queue::push_front(task* t) {
    fifo_for(t).push_front(t);
    ++ready_count;
}

task* queue::peek(list_end end) const noexcept {
    if (ready_count == 0) return nullptr;
    if (end == list_end::front) {
        for (auto p = ready.rbegin(); p != ready.rend(); ++p) {
            if (*p && !(*p)->empty()) return (*p)->front();
        }
    } else {
        for (const auto& fifo : ready) {
            if (fifo && !fifo->empty()) return fifo->back();
        }
    }
    return nullptr;
}

void queue::remove_ready(task* t) noexcept {
    auto& fifo = ready[t->priority];
    if (!fifo || fifo->empty()) return;
    if (fifo->front() == t) {
        fifo->pop_front();
    } else if (fifo->back() == t) {
        fifo->pop_back();
    } else {
        auto it = std::find(fifo->begin(), fifo->end(), t);
        if (it == fifo->end()) return;
        fifo->erase(it);
    }
    --ready_count;
}

}  // namespace conveyor::core::detail

#include <conveyor/runtime/input_buffer.hpp>

#include <algorithm>
#include <cstring>

namespace conveyor::server {

std::span<char> input_buffer::prepare(std::size_t n) {
    auto pending_len = end_ - begin_;
    if (capacity_ - end_ < n) {
        if (capacity_ - pending_len >= n && begin_ > 0) {
            std::memmove(data_.get(), data_.get() + begin_, pending_len);
        } else {
            auto bigger = std::max(capacity_ * 2, pending_len + n);
            auto fresh = std::make_unique_for_overwrite<char[]>(bigger);
            if (pending_len) std::memcpy(fresh.get(), data_.get() + begin_, pending_len);
            data_ = std::move(fresh);
            capacity_ = bigger;
        }
        begin_ = 0;
        end_ = pending_len;
    } else if (begin_ == end_) {
        begin_ = end_ = 0;  // empty: start over at the front
    }
    return {data_.get() + end_, capacity_ - end_};
}

}  // namespace conveyor::server

// The bytes a front end has read from its socket and not yet decoded (RESP and AMQP sessions).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace conveyor::server {

// Bytes read but not yet decoded. Unlike std::string it never zero-fills the space a read is
// about to overwrite (16 KiB per read would otherwise be cleared for nothing).
//
// prepare() may move the pending bytes; pending() and consume() never do, so a view from
// pending() stays valid until the next prepare().
class input_buffer {
public:
    std::string_view pending() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    void consume(std::size_t n) noexcept { begin_ += n; }
    // Drops every pending byte (input after a framing error is not looked at).
    void discard() noexcept { begin_ = end_; }
    // Room for at least `n` more bytes at the end; moves pending bytes to the front first.
    std::span<char> prepare(std::size_t n);
    void commit(std::size_t n) noexcept { end_ += n; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace conveyor::server

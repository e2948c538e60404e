// Sans-IO bookkeeping of one pipelined connection: requests queued by any number of callers,
// coalesced into one write, and replies matched to them in FIFO order (as Redis answers).
//
// The connection (connection.cpp) only moves bytes: it writes take_batch() when has_unsent(),
// and feeds what it reads to feed(). Everything that decides which reply belongs to which
// caller lives here and is unit-tested without a socket.
//
// `Waiter` is whatever identifies a caller (the connection uses a shared_ptr to the pending
// call; tests use ints). A blocking request (LEASE BLOCK, RESULT WAIT) just keeps its place at
// the front until its reply comes; requests behind it wait, as with Redis.
#pragma once

#include <conveyor/client/commands.hpp>
#include <conveyor/protocol/resp_reply_decoder.hpp>

#include <cstddef>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace conveyor::client {

template <class Waiter>
class request_pipeline {
public:
    explicit request_pipeline(protocol::resp_reply_limits limits = {}) : decoder_(limits) {}

    // Queues one request; its bytes go out with the next batch, its reply to `waiter`.
    void push(std::span<const std::string> args, Waiter waiter) {
        encode_request(unsent_, args);
        waiters_.push_back(std::move(waiter));
        ++unsent_count_;
    }

    bool has_unsent() const noexcept { return unsent_count_ != 0; }
    std::size_t unsent() const noexcept { return unsent_count_; }
    // Requests written and not answered yet.
    std::size_t in_flight() const noexcept { return waiters_.size() - unsent_count_; }

    // Replaces `batch` with the bytes of every queued request, which count as written from
    // now on; returns how many requests the batch holds. The caller keeps `batch` alive until
    // its write ends; requests pushed meanwhile go into the next batch. Swapping two buffers
    // keeps both allocations for reuse.
    std::size_t take_batch(std::string& batch) {
        batch.clear();
        batch.swap(unsent_);
        return std::exchange(unsent_count_, 0);
    }

    // Decodes the replies in `bytes` (any split of the stream) and calls
    // on_reply(Waiter&&, reply&&) for each, with the waiter of the oldest request in flight.
    // RESP3 push messages are not replies and are skipped. Returns false on a protocol error
    // or a reply nobody asked for (error_message() says which; for an error reply nobody
    // asked for, it is that reply's text and unsolicited_error() is true); the stream is then
    // unusable and the caller closes the connection.
    template <class OnReply>
    bool feed(std::string_view bytes, OnReply&& on_reply) {
        if (failed_) return false;
        std::string_view input = bytes;
        const bool buffered = !pending_.empty();
        if (buffered) {
            pending_.append(bytes);
            input = pending_;
        }
        std::size_t pos = 0;
        bool ok = true;
        for (;;) {
            auto r = decoder_.feed(input.substr(pos), value_);
            pos += r.consumed;
            if (r.status == protocol::reply_status::need_more) break;
            if (r.status == protocol::reply_status::error) {
                ok = fail(decoder_.error_message());
                break;
            }
            if (value_.type == protocol::resp_type::push) continue;
            if (in_flight() == 0) {
                // A server that refuses a client on sight (protected mode's -DENIED, -ERR max
                // number of clients reached) says why before any request, then closes.
                if (value_.is_error()) {
                    unsolicited_error_ = true;
                    ok = fail(value_.text);
                } else {
                    ok = fail("Protocol error: a reply arrived with no request waiting for it");
                }
                break;
            }
            Waiter w = std::move(waiters_.front());
            waiters_.pop_front();
            on_reply(std::move(w), std::exchange(value_, reply{}));
        }
        // Keep what the decoder did not consume (a partial line) for the next call.
        if (buffered) {
            pending_.erase(0, pos);
        } else {
            pending_.assign(input.substr(pos));
        }
        return ok;
    }

    const std::string& error_message() const noexcept { return error_; }
    // Whether feed() failed on an error reply that arrived with no request waiting for it.
    bool unsolicited_error() const noexcept { return unsolicited_error_; }

    // Removes every waiter, oldest first, handing each to f(Waiter&&); drops unsent bytes.
    // For close: the caller fails each one.
    template <class F>
    void drain(F&& f) {
        unsent_.clear();
        unsent_count_ = 0;
        while (!waiters_.empty()) {
            Waiter w = std::move(waiters_.front());
            waiters_.pop_front();
            f(std::move(w));
        }
    }

private:
    bool fail(const std::string& message) {
        failed_ = true;
        error_ = message;
        return false;
    }

    protocol::resp_reply_decoder decoder_;
    std::deque<Waiter> waiters_;  // in flight first (oldest at the front), then unsent
    std::size_t unsent_count_ = 0;
    std::string unsent_;   // encoded requests not yet taken by take_batch()
    std::string pending_;  // received bytes the decoder has not consumed yet
    reply value_;
    std::string error_;
    bool failed_ = false;
    bool unsolicited_error_ = false;
};

}  // namespace conveyor::client

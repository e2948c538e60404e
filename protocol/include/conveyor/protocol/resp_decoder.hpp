// Incremental, sans-IO decoder for RESP requests as a Redis server reads them:
// multibulk (`*<n>\r\n$<len>\r\n<bytes>\r\n...`) and inline commands (`PING\r\n`).
//
// The decoder never touches a socket and never sizes an allocation by a length the client
// declared: bulk bytes are copied into the argument as they arrive, so memory grows only with
// bytes actually received. Limits come in as constructor arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::protocol {

struct resp_limits {
    // Longest bulk string accepted, in bytes (Redis: proto-max-bulk-len, 512 MiB).
    std::size_t max_bulk_len = std::size_t{512} * 1024 * 1024;
    // Most arguments in one multibulk request (Redis accepts up to 1024*1024*1024; we are
    // tighter by default).
    std::size_t max_args = std::size_t{1024} * 1024;
    // Longest inline command line, and longest `*`/`$` header line (Redis: 64 KiB).
    std::size_t max_inline_len = std::size_t{64} * 1024;
    // Most bytes one request may hold while it is read (Redis: client-query-buffer-limit,
    // 1 GiB): its header lines as received, and for each argument its declared length plus
    // CRLF plus `arg_overhead` bytes for the argument's own bookkeeping. Checked on the declared
    // length, before the bytes arrive, so an oversized request fails at its `$` header.
    std::size_t max_request_bytes = std::size_t{1024} * 1024 * 1024;
    // True for the limits before authentication: refusals are then worded as Redis 7 words
    // them for unauthenticated clients ("Protocol error: unauthenticated bulk length").
    bool unauthenticated = false;

    static constexpr std::size_t arg_overhead = sizeof(std::string);

    // The limits before AUTH (CVE-2021-32675): Redis's 10 arguments of 16 KiB, and lines and a
    // whole request small enough that an unauthenticated connection holds little memory.
    static constexpr resp_limits before_auth() {
        resp_limits l;
        l.max_bulk_len = 16 * 1024;
        l.max_args = 10;
        l.max_inline_len = 16 * 1024;
        l.max_request_bytes = 64 * 1024;
        l.unauthenticated = true;
        return l;
    }
};

enum class decode_status {
    need_more,  // all input consumed (or kept); feed more bytes
    request,    // one complete request is in `args` (may be empty for an empty inline line)
    error,      // protocol error: error_message() says why; the stream can no longer be trusted
};

struct decode_result {
    decode_status status;
    // Bytes of the input consumed by this call. On `request` the caller drops `consumed`
    // bytes and calls feed() again with the rest. On `need_more` the caller drops `consumed`
    // bytes and keeps the remainder (a partial line the decoder needs to see again in full).
    std::size_t consumed;
};

class resp_request_decoder {
public:
    explicit resp_request_decoder(resp_limits limits = {});

    // Feeds bytes. Returns request/need_more/error as described above. After `request`, the
    // arguments are in `args` (cleared by the decoder at the start of the next request).
    // A negative multibulk count (`*-10\r\n`) is ignored, as Redis does: it yields no request
    // and decoding goes on. An empty inline line yields a request with no arguments, which
    // the caller ignores.
    decode_result feed(std::string_view input, std::vector<std::string>& args);

    // After `error`: the text that follows "-ERR " in the reply, e.g.
    // "Protocol error: invalid multibulk length". Wording matches Redis (networking.c).
    const std::string& error_message() const noexcept { return error_; }

    // True when a request has been started but not completed (for idle/slowloris policies).
    bool in_request() const noexcept { return state_ != state::idle && state_ != state::failed; }

    // New limits (after AUTH, say). They apply from the next request on: a request already
    // begun finishes under the limits it started with.
    void set_limits(const resp_limits& limits);
    const resp_limits& limits() const noexcept { return limits_; }

    // Reset to the initial state (drops any partial request).
    void reset();

private:
    // `failed` is sticky: every feed() after an error repeats it until reset().
    enum class state {
        idle,
        multibulk_len,
        bulk_header,
        bulk_data,
        bulk_crlf,
        inline_line,
        failed,
    };

    // Each step reads from input[pos...], advances `pos` past what it consumed, and returns a
    // result when feed() must return, or nullopt when decoding goes on.
    using step_result = std::optional<decode_result>;
    step_result read_multibulk_len(std::string_view input, std::size_t& pos,
                                   std::vector<std::string>& args);
    step_result read_bulk_header(std::string_view input, std::size_t& pos,
                                 std::vector<std::string>& args);
    step_result read_bulk_data(std::string_view input, std::size_t& pos,
                               std::vector<std::string>& args);
    step_result read_bulk_crlf(std::string_view input, std::size_t& pos);
    step_result read_inline(std::string_view input, std::size_t& pos,
                            std::vector<std::string>& args);
    // Adds `bytes` to the current request; an error once it passes max_request_bytes.
    step_result count_request_bytes(std::uint64_t bytes, std::size_t at);
    // Takes the complete line at input[pos...] into `content` (terminator excluded) and moves
    // `pos` past it. Header lines end in CRLF; inline lines in LF, a CR before it dropped.
    // Returns need_more (the partial line not consumed) while the terminator has not arrived,
    // or an error worded `too_big` once the content is known to exceed max_inline_len.
    step_result take_line(std::string_view input, std::size_t& pos, bool inline_form,
                          const char* too_big, std::string_view& content);
    decode_result fail(std::string message, std::size_t consumed);

    resp_limits limits_;
    std::optional<resp_limits> next_limits_;  // set_limits() during a request
    state state_ = state::idle;
    std::uint64_t request_bytes_ = 0;  // of the current request, as max_request_bytes counts
    std::int64_t args_left_ = 0;       // arguments still to read in the current multibulk
    std::int64_t bulk_left_ = 0;       // bytes still to read of the current bulk
    // Bytes of the pending (incomplete) line already searched for its terminator, so a line
    // fed one byte at a time is scanned once, not once per byte.
    std::size_t line_scanned_ = 0;
    std::string error_;
};

}  // namespace conveyor::protocol

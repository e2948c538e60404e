// Incremental, sans-IO decoder for RESP2 and RESP3 replies as a client reads them. Each
// complete reply comes out as one resp_value tree.
//
// Limits bound what a misbehaving server can make the client hold: nesting depth, elements per
// aggregate, bulk length, line length. As in the request decoder, no allocation is sized by a
// declared length beyond a small cap; strings and element vectors grow as bytes arrive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::protocol {

enum class resp_type : std::uint8_t {
    simple_string,  // +OK
    error,          // -ERR ...
    integer,        // :1
    bulk_string,    // $3 foo
    null,           // RESP3 `_`; RESP2 `$-1` and `*-1`
    array,          // *
    map,            // %  (RESP3)
    set,            // ~  (RESP3)
    push,           // >  (RESP3 out-of-band data: pub/sub messages, invalidations)
    boolean,        // #t / #f  (RESP3)
    double_number,  // ,1.5  (RESP3)
    big_number,     // (123...  (RESP3)
    bulk_error,     // !<len>  (RESP3)
    verbatim,       // =<len> txt:...  (RESP3)
};

struct resp_value {
    resp_type type = resp_type::null;
    // simple_string, error, bulk_string, bulk_error: the bytes; verbatim: the text after its
    // format; big_number: the digits as sent; double_number: the text as sent.
    std::string text;
    // verbatim only: the three-byte format, "txt" or "mkd".
    std::string format;
    // integer: the value; boolean: 1 or 0.
    std::int64_t integer = 0;
    // double_number: the value (inf, -inf and nan included).
    double number = 0.0;
    // array, set, push: the elements; map: key, value, key, value, ...
    std::vector<resp_value> elements;
    // RESP3 attributes (`|`) the server sent just before this value: key, value, ...
    std::vector<resp_value> attributes;

    bool is_error() const noexcept {
        return type == resp_type::error || type == resp_type::bulk_error;
    }
};

struct resp_reply_limits {
    // Deepest nesting of aggregates (attributes included).
    std::size_t max_depth = 32;
    // Most elements in one aggregate (pairs for maps and attributes).
    std::size_t max_aggregate_len = std::size_t{64} * 1024 * 1024;
    // Longest bulk string, bulk error or verbatim string.
    std::size_t max_bulk_len = std::size_t{512} * 1024 * 1024;
    // Longest line: simple strings, errors, numbers and type headers.
    std::size_t max_line_len = std::size_t{64} * 1024;
};

enum class reply_status {
    need_more,  // all input consumed (or kept); feed more bytes
    reply,      // one complete reply was moved into the caller's value
    error,      // protocol error: error_message() says why; the stream can no longer be trusted
};

struct reply_result {
    reply_status status;
    // Bytes of the input consumed, with the same contract as decode_result: the caller drops
    // them and keeps the rest (on need_more, a partial line the decoder must see again).
    std::size_t consumed;
};

class resp_reply_decoder {
public:
    explicit resp_reply_decoder(resp_reply_limits limits = {});

    // Feeds bytes; returns after each complete reply, which is moved into `reply`. Both RESP2
    // and RESP3 forms are accepted at any time (a HELLO switches the server mid-stream).
    reply_result feed(std::string_view input, resp_value& reply);

    // After `error`: why, e.g. "Protocol error: invalid bulk length".
    const std::string& error_message() const noexcept { return error_; }

    // True when part of a reply has been read.
    bool in_reply() const noexcept;

    // Back to the initial state (drops any partial reply).
    void reset();

private:
    enum class state { header, bulk_data, bulk_crlf, failed };

    // An aggregate being filled; attributes are aggregates too, attached to the next value.
    struct frame {
        resp_value value;
        std::int64_t remaining = 0;  // elements still to read
        bool attribute = false;
    };

    using step_result = std::optional<reply_result>;
    step_result read_header(std::string_view input, std::size_t& pos);
    step_result read_line_value(char type_byte, std::string_view body, std::size_t start);
    step_result start_bulk(char type_byte, std::string_view body, std::size_t start);
    step_result start_aggregate(char type_byte, std::string_view body, std::size_t start);
    step_result read_bulk_data(std::string_view input, std::size_t& pos);
    step_result read_bulk_crlf(std::string_view input, std::size_t& pos);
    // Hands a complete value to its parent aggregate, closing every aggregate it completes.
    void finish(resp_value value);
    resp_value start_value(resp_type type);
    reply_result fail(std::string message, std::size_t consumed);

    resp_reply_limits limits_;
    state state_ = state::header;
    std::vector<frame> stack_;
    std::vector<resp_value> pending_attributes_;  // for the next value to start
    bool attributes_pending_ = false;
    resp_value bulk_;             // the bulk string being read
    std::int64_t bulk_left_ = 0;  // bytes of it still to come
    std::optional<resp_value> complete_;
    std::size_t line_scanned_ = 0;  // as in resp_request_decoder
    std::string error_;
};

}  // namespace conveyor::protocol

// RESP2/RESP3 reply encoder: appends replies to a caller-owned std::string.
// Pure and allocation-light: the caller reuses one output buffer per connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::protocol {

enum class resp_version : std::uint8_t { resp2 = 2, resp3 = 3 };

class resp_writer {
public:
    resp_writer(std::string& out, resp_version version) : out_(&out), version_(version) {}

    resp_version version() const noexcept { return version_; }
    void set_version(resp_version v) noexcept { version_ = v; }
    std::string& buffer() noexcept { return *out_; }

    // `+OK\r\n`. The text must not contain CR or LF (checked: CR/LF become spaces).
    void simple(std::string_view text);
    // `-<text>\r\n`; the text starts with the error code, e.g. "ERR unknown command 'x'".
    // CR/LF in the text become spaces.
    void error(std::string_view text);
    // `:<n>\r\n`
    void integer(std::int64_t n);
    // `$<len>\r\n<bytes>\r\n`
    void bulk(std::string_view bytes);
    // RESP2 `$-1\r\n`; RESP3 `_\r\n`.
    void null();
    // RESP2 `*-1\r\n`; RESP3 `_\r\n` (the nil reply of BLPOP timeouts and the like).
    void null_array();
    // `*<n>\r\n`, followed by n replies written by the caller.
    void array_header(std::size_t n);
    // RESP3 `%<n>\r\n` (n pairs follow); RESP2 `*<2n>\r\n` (a flat array of 2n replies).
    void map_header(std::size_t pairs);
    // RESP3 `~<n>\r\n`; RESP2 `*<n>\r\n`.
    void set_header(std::size_t n);
    // RESP3 `#t\r\n`/`#f\r\n`; RESP2 `:1\r\n`/`:0\r\n`.
    void boolean(bool b);
    // RESP3 `,<d>\r\n`; RESP2 bulk string of the same text.
    void dbl(double d);
    // RESP3 `=<len+4>\r\ntxt:<text>\r\n`; RESP2 bulk string (INFO's reply in Redis 7).
    void verbatim(std::string_view text);

private:
    std::string* out_;
    resp_version version_;
};

}  // namespace conveyor::protocol

#include <conveyor/client/error.hpp>

namespace conveyor::client {

namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "conveyor.client"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::closed:
                return "connection closed";
            case errc::protocol_error:
                return "protocol error";
            case errc::unexpected_reply:
                return "unexpected reply";
            case errc::server_error:
                return "server error reply";
            case errc::tls_error:
                return "TLS handshake or certificate verification failed";
            case errc::bad_url:
                return "bad URL";
            case errc::refused:
                return "refused by the server";
        }
        return "unknown conveyor client error";
    }
};

std::string_view code_word_of(std::string_view text) {
    auto space = text.find(' ');
    return text.substr(0, space);
}

std::string_view detail_of(std::string_view text) {
    auto space = text.find(' ');
    return space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
}

}  // namespace

const boost::system::error_category& client_category() noexcept {
    static const category instance;
    return instance;
}

server_error::server_error(std::string_view reply_text)
    : error(make_error_code(errc::server_error), std::string(reply_text)),
      code_word_(code_word_of(reply_text)),
      detail_(detail_of(reply_text)) {}

void throw_error(errc e, const std::string& what) {
    throw error(make_error_code(e), what);
}

}  // namespace conveyor::client

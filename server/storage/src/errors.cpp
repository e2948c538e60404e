#include "conveyor/storage/errors.hpp"

#include <string>

namespace conveyor::storage {

namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "conveyor.storage"; }
    std::string message(int value) const override {
        switch (static_cast<storage_errc>(value)) {
            case storage_errc::log_failed:
                return "the log is failed after an earlier write or fsync error; "
                       "no further writes are accepted";
            case storage_errc::not_open:
                return "no log segment is open";
            case storage_errc::already_open:
                return "a log segment is already open";
            case storage_errc::record_too_large:
                return "the record exceeds the maximum log frame length";
            case storage_errc::bad_record:
                return "the record could not be encoded";
            case storage_errc::no_space:
                return "no space left on the device for the log";
        }
        return "unknown storage error";
    }
};

}  // namespace

const std::error_category& storage_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace conveyor::storage

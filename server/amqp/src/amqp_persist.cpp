// The AMQP topology file, <data-dir>/amqp-topology.json (durable exchanges, queues and
// bindings; docs/amqp.md "Exchanges, queues, bindings"), read and written through the log's
// storage::file_io, so that DEBUG LOG-FAULT reaches it as it reaches the log. The rule is the
// log's: a file that exists but cannot be read refuses the start; a failed write or sync stops the
// server (fail-stop, nothing after it is acknowledged), except a full disk: the client's method
// that made a durable change is refused (506 RESOURCE_ERROR) and the change undone; a change
// the broker makes itself (x-expires, auto-delete) is logged and written at the next change.
#include <conveyor/amqp/amqp_vhost.hpp>
#include "amqp_errors.hpp"

#include <conveyor/storage/file_io.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <system_error>

namespace conveyor::server {
namespace {

constexpr const char* file_name = "amqp-topology.json";

bool disk_full(const std::error_code& ec) {
    return ec == std::errc::no_space_on_device || ec.value() == EDQUOT;
}

}  // namespace

std::optional<std::string> amqp_vhost::load() {
    const std::string path = service_.config().data_dir + "/" + file_name;
    std::string text;
    auto* io = service_.file_io();
    if (io == nullptr) return std::nullopt;
    if (auto ec = io->read_all(path, text)) {
        if (ec == std::errc::no_such_file_or_directory) return std::nullopt;
        // EACCES, EIO, EISDIR ...: the durable topology is there but unreadable; starting
        // without it would drop it for good at the next save.
        return "cannot read " + path + ": " + ec.message();
    }
    if (auto error = topology_.load(text, service_.now().mono_us)) {
        return "cannot read " + path + ": " + *error;
    }
    topology_.take_durable_change();
    spdlog::info("amqp: loaded {} exchanges and {} queues from {}", topology_.exchange_count(),
                 topology_.queue_count(), path);
    return std::nullopt;
}

std::string amqp_vhost::file_path() const {
    return service_.config().data_dir + "/" + file_name;
}

std::error_code amqp_vhost::write_file() {
    auto* io = service_.file_io();
    if (io == nullptr) return {};
    const std::string path = file_path();
    // Written whole to a temporary file, synced, renamed over the old one: a crash leaves
    // the old or the new file, never a torn one.
    const std::error_code ec = storage::replace_file(*io, service_.config().data_dir, path,
                                                     path + ".tmp", topology_.save());
    if (!ec || disk_full(ec)) return ec;
    service_.stop_on_fault("writing " + path + " failed (" + ec.message() + ")");
    return {};
}

void amqp_vhost::save_if_changed() {
    if (!topology_.take_durable_change()) return;
    if (const auto ec = write_file()) {
        spdlog::error(
            "amqp: cannot write {}: {} (durable exchanges, queues and bindings are not saved "
            "until the next change)",
            file_path(), ec.message());
    }
}

std::optional<amqp_topology> amqp_vhost::before_durable_change(bool durable) const {
    if (!durable || service_.file_io() == nullptr) return std::nullopt;
    return topology_;
}

std::optional<protocol::amqp::amqp_error> amqp_vhost::commit_durable_change(
    std::optional<amqp_topology>& before) {
    if (!before) {
        save_if_changed();
        return std::nullopt;
    }
    if (!topology_.take_durable_change()) return std::nullopt;
    const auto ec = write_file();
    if (!ec) return std::nullopt;
    topology_ = std::move(*before);
    before.reset();
    spdlog::error("amqp: cannot write {}: {}; the change is refused (506 RESOURCE_ERROR)",
                  file_path(), ec.message());
    return channel_exception(protocol::amqp::reply_code::resource_error,
                             "RESOURCE_ERROR - cannot write " + file_path() + ": " + ec.message() +
                                 "; the change is not made");
}

}  // namespace conveyor::server

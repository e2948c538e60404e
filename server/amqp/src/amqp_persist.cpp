// The AMQP topology file, <data-dir>/amqp-topology.json (durable exchanges, queues and
// bindings; docs/amqp.md "Durability"), read and written through the log's storage::file_io,
// so that DEBUG LOG-FAULT reaches it as it reaches the log. The rule is the log's: a file
// that exists but cannot be read refuses the start; a failed write or sync stops the server
// (fail-stop, nothing after it is acknowledged), except a full disk, which is logged and
// tried again at the next change.
#include <conveyor/amqp/amqp_session.hpp>

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

void amqp_vhost::save_if_changed() {
    if (!topology_.take_durable_change()) return;
    auto* io = service_.file_io();
    if (io == nullptr) return;
    const std::string& dir = service_.config().data_dir;
    const std::string path = dir + "/" + file_name;
    // Written whole to a temporary file, synced, renamed over the old one: a crash leaves
    // the old or the new file, never a torn one.
    const std::error_code ec =
        storage::replace_file(*io, dir, path, path + ".tmp", topology_.save());
    if (!ec) return;
    if (disk_full(ec)) {
        spdlog::error(
            "amqp: cannot write {}: {} (durable exchanges, queues and bindings are not saved "
            "until the next change)",
            path, ec.message());
        return;
    }
    service_.stop_on_fault("writing " + path + " failed (" + ec.message() + ")");
}

}  // namespace conveyor::server

// storage::replace_file (file_io.hpp): the one atomic, durable whole-file write, used by
// compaction's segment rewrites and the AMQP topology file.
#include "conveyor/storage/file_io.hpp"

namespace conveyor::storage {

std::error_code replace_file(file_io& io, const std::string& dir, const std::string& path,
                             const std::string& temp, std::string_view bytes) {
    if (std::error_code ec = io.remove(temp)) return ec;
    auto created = io.create_exclusive(temp);
    if (created.error) return created.error;
    std::error_code ec = io.write_all(created.value, bytes);
    if (!ec) ec = io.sync(created.value);
    const std::error_code closed = io.close(created.value);
    if (!ec) ec = closed;
    if (!ec) ec = io.rename(temp, path);
    if (!ec) ec = io.sync_directory(dir);
    if (ec) io.remove(temp);
    return ec;
}

}  // namespace conveyor::storage

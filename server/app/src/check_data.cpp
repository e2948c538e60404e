#include <conveyor/app/check_data.hpp>

#include "conveyor/storage/file_io.hpp"
#include "conveyor/storage/log_directory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>
#include <utility>
#include <variant>

namespace conveyor::server {
namespace {

constexpr const char* usage = R"(Usage: conveyor check-data [--repair] [--force] <dir>

Checks the log segments (<sequence>.log) of a data directory, in sequence order, and prints
one line per segment, a count of records with times out of range (clamped at start) if any,
and a verdict. Exit status: 0 clean or only a torn tail in the newest
segment (the server cuts it at start), 1 damage, 2 usage error, unreadable directory, or a
directory a running server holds.

A directory whose LOCK a running conveyor server holds is refused: its newest segment is
being written (a check would see a torn tail that is only an unfinished write, a repair would
cut records the server has acknowledged). The lock is held while the check runs, so no server
starts on the directory meanwhile.

Options:
  --repair   truncate the log at its first bad record and remove every later segment;
             prints how many records that dropped
  --force    run even though a server holds the directory (experts only; with --repair it
             can lose acknowledged records)
  -h, --help this text
)";

// A file descriptor closed (and its flock released) at the end of its scope; -1: none.
class unique_fd {
public:
    explicit unique_fd(int fd) : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&&) = delete;
    ~unique_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

struct check_args {
    std::string dir;
    bool repair = false;
    bool force = false;
};

// --repair may come before or after the directory. nullopt: usage error (already printed).
std::optional<check_args> parse_args(const std::vector<std::string>& args, bool& help) {
    check_args out;
    bool have_dir = false;
    for (const auto& arg : args) {
        if (arg == "--help" || arg == "-h") {
            help = true;
            return std::nullopt;
        }
        if (arg == "--repair") {
            out.repair = true;
        } else if (arg == "--force") {
            out.force = true;
        } else if (!arg.empty() && arg[0] == '-') {
            std::cerr << "conveyor check-data: unknown option '" << arg << "'\n" << usage;
            return std::nullopt;
        } else if (have_dir) {
            std::cerr << "conveyor check-data: more than one directory given\n" << usage;
            return std::nullopt;
        } else {
            out.dir = arg;
            have_dir = true;
        }
    }
    if (!have_dir) {
        std::cerr << "conveyor check-data: no data directory given\n" << usage;
        return std::nullopt;
    }
    return out;
}

// "1 segment", "2 segments".
std::string count(std::size_t n, const char* noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

int read_failure(const std::string& path, const std::error_code& ec) {
    std::cerr << "conveyor check-data: cannot read " << path << ": " << ec.message() << "\n";
    return 2;
}

void print_segments(const storage::directory_scan& scan) {
    for (const auto& seg : scan.segments) {
        std::cout << seg.path << ": " << count(seg.records, "record") << ", "
                  << count(seg.bytes, "byte");
        if (seg.after_damage) std::cout << " (after the damage: would be dropped)";
        std::cout << "\n";
    }
}

int check(const check_args& args) {
    storage::posix_file_io io;
    // Each segment is read whole into memory, one at a time (scan_log_directory); fine for
    // 64 MiB segments, an mmap would avoid the copy.
    std::size_t out_of_range = 0;
    const storage::directory_scan scan =
        storage::scan_log_directory(io, args.dir, [&](const core::record& r) {
            if (!core::record_times_in_range(r)) ++out_of_range;
        });
    if (!scan.ok()) return read_failure(scan.error_path, scan.error);
    print_segments(scan);
    if (out_of_range > 0) {
        // Written before times had a range (docs/storage-format.md): replay clamps them.
        std::cout << "out of range: " << count(out_of_range, "record")
                  << " with a time more than 100 years after its own; the server clamps them "
                     "to 100 years at start\n";
    }
    if (scan.segments.empty()) {
        std::cout << "clean: no log segments in " << args.dir << "\n";
        return 0;
    }
    const std::size_t n = scan.segments.size();
    if (std::holds_alternative<storage::log_clean>(scan.outcome)) {
        std::cout << "clean: " << count(n, "segment") << ", " << count(scan.records, "record")
                  << "\n";
        return 0;
    }
    if (const auto* torn = std::get_if<storage::log_torn_tail>(&scan.outcome)) {
        std::cout << "torn tail: " << torn->path << " at byte " << torn->offset << " ("
                  << torn->bytes_dropped << " bytes of an unfinished write); the server "
                  << "will cut it at start. " << count(n, "segment") << ", "
                  << count(scan.records, "record") << " kept\n";
        return 0;
    }
    const auto& damage = std::get<storage::log_damage>(scan.outcome);
    std::cout << "damage: " << scan.records << " records readable before it\n";
    std::cerr << "conveyor check-data: damage in " << damage.path << " at byte " << damage.offset
              << ": " << damage.reason << ".\n"
              << "The server will refuse to start. Run `conveyor check-data --repair " << args.dir
              << "` to truncate the log there; that drops about " << damage.records_after_estimate
              << " records / " << damage.bytes_after << " bytes.\n";
    return 1;
}

int repair(const check_args& args) {
    storage::posix_file_io io;
    const storage::repair_result result = storage::repair_log_directory(io, args.dir);
    if (!result.ok()) {
        if (std::holds_alternative<storage::log_clean>(result.before)) {
            return read_failure(result.error_path, result.error);
        }
        std::cerr << "conveyor check-data: repair failed at " << result.error_path << ": "
                  << result.error.message() << "\n";
        return 1;
    }
    std::string cut_path;
    std::size_t cut_offset = 0;
    if (const auto* torn = std::get_if<storage::log_torn_tail>(&result.before)) {
        cut_path = torn->path;
        cut_offset = torn->offset;
    } else if (const auto* damage = std::get_if<storage::log_damage>(&result.before)) {
        cut_path = damage->path;
        cut_offset = damage->offset;
    } else {
        std::cout << "clean: nothing to repair in " << args.dir << "\n";
        return 0;
    }
    std::cout << "repaired: cut " << cut_path << " at byte " << cut_offset << "; dropped "
              << result.records_dropped << " records (" << result.bytes_dropped << " bytes), "
              << "removed " << count(result.files_removed, "segment file") << "\n";
    return 0;
}

// The data directory's LOCK, as the server takes it (server_main.cpp), held until the check
// ends. nullopt (a message printed) when a server holds it and --force was not given.
std::optional<unique_fd> lock_directory(const check_args& args) {
    const std::string path = args.dir + "/LOCK";
    unique_fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (fd.get() < 0) return fd;  // no LOCK: no server has run here, or not a data directory
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return fd;
    const int err = errno;
    if (err != EWOULDBLOCK) {
        std::cerr << "conveyor check-data: cannot lock " << path << ": " << std::strerror(err)
                  << "\n";
        return std::nullopt;
    }
    if (args.force) {
        std::cerr << "conveyor check-data: warning: " << args.dir
                  << " is in use by a running conveyor server (" << path
                  << " is locked); going on because of --force\n";
        return unique_fd(-1);
    }
    std::cerr << "conveyor check-data: " << args.dir << " is in use by a running conveyor server ("
              << path << " is locked): stop the server first, or add --force to "
              << (args.repair ? "repair" : "check") << " it anyway"
              << (args.repair ? " (a repair of a live log can lose acknowledged records)" : "")
              << "\n";
    return std::nullopt;
}

}  // namespace

int check_data_main(const std::vector<std::string>& args) {
    bool help = false;
    const std::optional<check_args> parsed = parse_args(args, help);
    if (help) {
        std::cout << usage;
        return 0;
    }
    if (!parsed) return 2;
    const auto lock = lock_directory(*parsed);
    if (!lock) return 2;
    return parsed->repair ? repair(*parsed) : check(*parsed);
}

}  // namespace conveyor::server

#include "conveyor/storage/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

namespace conveyor::storage {

namespace {

std::error_code last_error() noexcept {
    return {errno, std::system_category()};
}

io_result<file_handle> open_file(const std::string& path, int flags) {
    io_result<file_handle> r;
    int fd;
    do {
        fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        r.error = last_error();
    } else {
        r.value.fd = fd;
    }
    return r;
}

}  // namespace

io_result<file_handle> posix_file_io::create_exclusive(const std::string& path) {
    return open_file(path, O_WRONLY | O_CREAT | O_EXCL);
}

io_result<file_handle> posix_file_io::open_append(const std::string& path) {
    return open_file(path, O_WRONLY | O_APPEND);
}

std::error_code posix_file_io::write_all(file_handle f, std::string_view bytes) {
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(f.fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (n == 0) return {EIO, std::system_category()};  // would loop forever otherwise
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    return {};
}

std::error_code posix_file_io::write_at(file_handle f, std::uint64_t offset,
                                        std::string_view bytes) {
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    auto at = static_cast<off_t>(offset);
    while (left > 0) {
        const ssize_t n = ::pwrite(f.fd, p, left, at);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (n == 0) return {EIO, std::system_category()};
        p += n;
        at += n;
        left -= static_cast<std::size_t>(n);
    }
    return {};
}

std::error_code posix_file_io::allocate(file_handle f, std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return {};
    int rc;
    do {
        rc = ::fallocate(f.fd, 0, static_cast<off_t>(offset), static_cast<off_t>(length));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) return {};
    if (errno != EOPNOTSUPP && errno != ENOSYS) return last_error();
    // No fallocate here: zeros, a piece at a time.
    const std::string zeros(std::min<std::uint64_t>(length, std::uint64_t{1} << 20), '\0');
    for (std::uint64_t done = 0; done < length;) {
        const std::uint64_t n = std::min<std::uint64_t>(zeros.size(), length - done);
        if (std::error_code ec = write_at(f, offset + done, std::string_view(zeros).substr(0, n)))
            return ec;
        done += n;
    }
    return {};
}

void posix_file_io::start_writeback(file_handle f, std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    // Advisory: an error (e.g. a file system without it) only means the sync does it all.
    ::sync_file_range(f.fd, static_cast<off64_t>(offset), static_cast<off64_t>(length),
                      SYNC_FILE_RANGE_WRITE);
}

// EINTR means the sync did not happen, so it is retried; any other error is returned and
// never retried here (see file_io.hpp).
std::error_code posix_file_io::sync(file_handle f) {
    int rc;
    do {
        rc = ::fdatasync(f.fd);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? last_error() : std::error_code{};
}

io_result<std::uint64_t> posix_file_io::file_size(file_handle f) {
    io_result<std::uint64_t> r;
    struct stat st {};
    if (::fstat(f.fd, &st) < 0) {
        r.error = last_error();
    } else {
        r.value = static_cast<std::uint64_t>(st.st_size);
    }
    return r;
}

// close() is not retried on EINTR: on Linux the descriptor is released either way.
std::error_code posix_file_io::close(file_handle f) {
    return ::close(f.fd) < 0 ? last_error() : std::error_code{};
}

std::error_code posix_file_io::truncate(const std::string& path, std::uint64_t size) {
    const io_result<file_handle> f = open_file(path, O_WRONLY);
    if (f.error) return f.error;
    std::error_code ec;
    if (::ftruncate(f.value.fd, static_cast<off_t>(size)) < 0) {
        ec = last_error();
    } else {
        ec = sync(f.value);
    }
    const std::error_code closed = close(f.value);
    return ec ? ec : closed;
}

std::error_code posix_file_io::sync_directory(const std::string& dir) {
    const io_result<file_handle> d = open_file(dir, O_RDONLY | O_DIRECTORY);
    if (d.error) return d.error;
    int rc;
    do {
        rc = ::fsync(d.value.fd);
    } while (rc < 0 && errno == EINTR);
    const std::error_code ec = rc < 0 ? last_error() : std::error_code{};
    const std::error_code closed = close(d.value);
    return ec ? ec : closed;
}

std::error_code posix_file_io::read_all(const std::string& path, std::string& out) {
    const io_result<file_handle> f = open_file(path, O_RDONLY);
    if (f.error) {
        out.clear();
        return f.error;
    }
    // Sized once from fstat and read in place; a file that grows meanwhile is read on. What
    // `out` held is overwritten, not cleared first: resizing from empty would zero-fill every
    // byte before the read overwrites it, and the compactor reads segment after segment of
    // about the same size into one string.
    struct stat st {};
    const std::size_t expected =
        ::fstat(f.value.fd, &st) == 0 && st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0;
    // One byte more, so the read that meets the end needs no growth.
    if (out.size() < expected + 1) out.resize(expected + 1);
    std::error_code ec;
    std::size_t have = 0;
    for (;;) {
        if (have == out.size()) out.resize(have + 64 * 1024);
        const ssize_t n = ::read(f.value.fd, out.data() + have, out.size() - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ec = last_error();
            break;
        }
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    out.resize(have);
    const std::error_code closed = close(f.value);
    return ec ? ec : closed;
}

std::error_code posix_file_io::remove(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
    return {};
}

std::error_code posix_file_io::rename(const std::string& from, const std::string& to) {
    if (::rename(from.c_str(), to.c_str()) != 0) return {errno, std::system_category()};
    return {};
}

}  // namespace conveyor::storage

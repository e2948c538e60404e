#include "conveyor/storage/file_io.hpp"

#include <algorithm>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <thread>

namespace conveyor::storage {

void faulty_file_io::fail_write(std::uint64_t nth, int error, std::size_t partial_bytes) noexcept {
    std::lock_guard lk(mu_);
    write_fault_ = {nth, error, partial_bytes};
}

void faulty_file_io::fail_sync(std::uint64_t nth, int error) noexcept {
    std::lock_guard lk(mu_);
    sync_fault_ = {nth, error, 0};
}

void faulty_file_io::fail_create(std::uint64_t nth, int error) noexcept {
    std::lock_guard lk(mu_);
    create_fault_ = {nth, error, 0};
}

void faulty_file_io::fail_truncate(std::uint64_t nth, int error) noexcept {
    std::lock_guard lk(mu_);
    truncate_fault_ = {nth, error, 0};
}

void faulty_file_io::fail_remove(std::uint64_t nth, int error) noexcept {
    std::lock_guard lk(mu_);
    remove_fault_ = {nth, error, 0};
}

std::error_code faulty_file_io::remove(const std::string& path) {
    std::unique_lock lk(mu_);
    if (++removes_ == remove_fault_.nth) return {remove_fault_.error, std::system_category()};
    return inner_.remove(path);
}

io_result<file_handle> faulty_file_io::create_exclusive(const std::string& path) {
    std::unique_lock lk(mu_);
    if (++creates_ == create_fault_.nth) {
        return {{}, {create_fault_.error, std::system_category()}};
    }
    io_result<file_handle> r = inner_.create_exclusive(path);
    if (!r.error && track_syncs_) note_sync_locked(track_locked(r.value, path, 0));
    return r;
}

faulty_file_io::tracked_file& faulty_file_io::track_locked(file_handle f, const std::string& path,
                                                           std::uint64_t data_end) {
    tracked_file& t = tracked_[f.fd];
    t.path = path;
    t.data_end = data_end;
    t.side_fd = ::open((path + ".synced").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    return t;
}

void faulty_file_io::track_syncs(bool on) noexcept {
    std::lock_guard lk(mu_);
    track_syncs_ = on;
}

void faulty_file_io::note_write(file_handle f, std::optional<std::uint64_t> offset,
                                std::string_view bytes) {
    std::lock_guard lk(mu_);
    auto it = tracked_.find(f.fd);
    if (it == tracked_.end()) return;
    if (std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == '\0'; })) return;
    std::uint64_t start = 0;
    if (offset) {
        start = *offset;
    } else {
        const io_result<std::uint64_t> size = inner_.file_size(f);
        start = size.value - std::min<std::uint64_t>(size.value, bytes.size());
    }
    it->second.data_end = std::max(it->second.data_end, start + bytes.size());
}

void faulty_file_io::note_sync(file_handle f) {
    std::lock_guard lk(mu_);
    auto it = tracked_.find(f.fd);
    if (it != tracked_.end()) note_sync_locked(it->second);
}

io_result<file_handle> faulty_file_io::open_append(const std::string& path) {
    io_result<file_handle> r = inner_.open_append(path);
    std::lock_guard lk(mu_);
    // An existing file: a sync through this descriptor makes all of it durable.
    if (!r.error && track_syncs_) track_locked(r.value, path, inner_.file_size(r.value).value);
    return r;
}

std::error_code faulty_file_io::write_all(file_handle f, std::string_view bytes) {
    return write(f, std::nullopt, bytes);
}

std::error_code faulty_file_io::write_at(file_handle f, std::uint64_t offset,
                                         std::string_view bytes) {
    return write(f, offset, bytes);
}

// One more write (write_all, write_at, allocate): whether it is the one to fail, the fault
// armed and the disk-full state, read under the lock (the core thread may re-arm them).
faulty_file_io::write_check faulty_file_io::count_write() {
    std::lock_guard lk(mu_);
    return {++writes_ == write_fault_.nth, write_fault_, disk_full_};
}

void faulty_file_io::start_writeback(file_handle f, std::uint64_t offset, std::uint64_t length) {
    inner_.start_writeback(f, offset, length);  // not a sync: nothing for the tracking
}

std::error_code faulty_file_io::allocate(file_handle f, std::uint64_t offset,
                                         std::uint64_t length) {
    const auto [faulted, armed, full] = count_write();
    if (faulted) return {armed.error, std::system_category()};
    if (full && length > 0) {
        const io_result<std::uint64_t> size = inner_.file_size(f);
        if (size.error) return size.error;
        if (offset + length > size.value) return {ENOSPC, std::system_category()};
    }
    return inner_.allocate(f, offset, length);  // zeros: nothing for the power-loss tracking
}

std::error_code faulty_file_io::write(file_handle f, std::optional<std::uint64_t> offset,
                                      std::string_view bytes) {
    auto pass = [&](std::string_view part) {
        return offset ? inner_.write_at(f, *offset, part) : inner_.write_all(f, part);
    };
    const auto [faulted, armed, full] = count_write();
    if (faulted) {
        const std::size_t partial = std::min(armed.partial_bytes, bytes.size());
        if (partial > 0) {
            if (const std::error_code ec = pass(bytes.substr(0, partial))) return ec;
        }
        return {armed.error, std::system_category()};
    }
    if (full) {
        // Only the part that overwrites bytes the file already has finds room.
        const io_result<std::uint64_t> size = inner_.file_size(f);
        if (size.error) return size.error;
        const std::uint64_t at = offset ? *offset : size.value;
        const std::uint64_t inside =
            at < size.value ? std::min<std::uint64_t>(size.value - at, bytes.size()) : 0;
        if (inside < bytes.size()) {
            if (inside > 0) {
                if (const std::error_code ec = pass(bytes.substr(0, inside))) return ec;
            }
            return {ENOSPC, std::system_category()};
        }
    }
    const std::error_code ec = pass(bytes);
    if (!ec) note_write(f, offset, bytes);
    return ec;
}

std::error_code faulty_file_io::sync(file_handle f) {
    std::unique_lock lk(mu_);
    if (++syncs_ == sync_fault_.nth) return {sync_fault_.error, std::system_category()};
    const auto delay = sync_delay_;
    lk.unlock();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    const std::error_code ec = inner_.sync(f);
    if (!ec) note_sync(f);
    return ec;
}

void faulty_file_io::note_sync_locked(tracked_file& t) {
    if (t.side_fd < 0) return;
    char text[22];
    std::snprintf(text, sizeof text, "%020llu\n", static_cast<unsigned long long>(t.data_end));
    [[maybe_unused]] const ssize_t n = ::pwrite(t.side_fd, text, 21, 0);
}

void faulty_file_io::set_disk_full(bool full) noexcept {
    std::lock_guard lk(mu_);
    disk_full_ = full;
}

bool faulty_file_io::disk_full() const noexcept {
    std::lock_guard lk(mu_);
    return disk_full_;
}

void faulty_file_io::delay_syncs(std::chrono::milliseconds delay) noexcept {
    std::lock_guard lk(mu_);
    sync_delay_ = delay;
}

std::uint64_t faulty_file_io::writes() const noexcept {
    std::lock_guard lk(mu_);
    return writes_;
}

std::uint64_t faulty_file_io::syncs() const noexcept {
    std::lock_guard lk(mu_);
    return syncs_;
}

std::uint64_t faulty_file_io::creates() const noexcept {
    std::lock_guard lk(mu_);
    return creates_;
}

std::uint64_t faulty_file_io::reads() const noexcept {
    std::lock_guard lk(mu_);
    return reads_;
}

io_result<std::uint64_t> faulty_file_io::file_size(file_handle f) {
    return inner_.file_size(f);
}

std::error_code faulty_file_io::close(file_handle f) {
    {
        std::lock_guard lk(mu_);
        auto it = tracked_.find(f.fd);
        if (it != tracked_.end()) {
            if (it->second.side_fd >= 0) ::close(it->second.side_fd);
            tracked_.erase(it);
        }
    }
    return inner_.close(f);
}

std::error_code faulty_file_io::truncate(const std::string& path, std::uint64_t size) {
    std::unique_lock lk(mu_);
    if (++truncates_ == truncate_fault_.nth) {
        return {truncate_fault_.error, std::system_category()};
    }
    return inner_.truncate(path, size);
}

std::error_code faulty_file_io::sync_directory(const std::string& dir) {
    return inner_.sync_directory(dir);
}

std::error_code faulty_file_io::read_all(const std::string& path, std::string& out) {
    {
        std::lock_guard lk(mu_);
        ++reads_;
    }
    return inner_.read_all(path, out);
}

std::error_code faulty_file_io::rename(const std::string& from, const std::string& to) {
    return inner_.rename(from, to);
}

}  // namespace conveyor::storage

#include "conveyor/storage/file_io.hpp"

#include <algorithm>
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
    return inner_.create_exclusive(path);
}

io_result<file_handle> faulty_file_io::open_append(const std::string& path) {
    return inner_.open_append(path);
}

std::error_code faulty_file_io::write_all(file_handle f, std::string_view bytes) {
    return write(f, std::nullopt, bytes);
}

std::error_code faulty_file_io::write_at(file_handle f, std::uint64_t offset,
                                         std::string_view bytes) {
    return write(f, offset, bytes);
}

std::error_code faulty_file_io::write(file_handle f, std::optional<std::uint64_t> offset,
                                      std::string_view bytes) {
    auto pass = [&](std::string_view part) {
        return offset ? inner_.write_at(f, *offset, part) : inner_.write_all(f, part);
    };
    std::unique_lock lk(mu_);
    const bool faulted = ++writes_ == write_fault_.nth;
    const bool full = disk_full_;
    lk.unlock();
    if (faulted) {
        const std::size_t partial = std::min(write_fault_.partial_bytes, bytes.size());
        if (partial > 0) {
            if (const std::error_code ec = pass(bytes.substr(0, partial))) return ec;
        }
        return {write_fault_.error, std::system_category()};
    }
    if (full) {
        // Only the part that overwrites bytes the file already has finds room.
        const io_result<std::uint64_t> size = inner_.file_size(f);
        if (size.error) return size.error;
        const std::uint64_t at = offset ? *offset : size.value;
        const std::uint64_t inside = at < size.value ? std::min<std::uint64_t>(size.value - at, bytes.size()) : 0;
        if (inside < bytes.size()) {
            if (inside > 0) {
                if (const std::error_code ec = pass(bytes.substr(0, inside))) return ec;
            }
            return {ENOSPC, std::system_category()};
        }
    }
    return pass(bytes);
}

std::error_code faulty_file_io::sync(file_handle f) {
    std::unique_lock lk(mu_);
    if (++syncs_ == sync_fault_.nth) return {sync_fault_.error, std::system_category()};
    const auto delay = sync_delay_;
    lk.unlock();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return inner_.sync(f);
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

io_result<std::uint64_t> faulty_file_io::file_size(file_handle f) {
    return inner_.file_size(f);
}

std::error_code faulty_file_io::close(file_handle f) {
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
    return inner_.read_all(path, out);
}

std::error_code faulty_file_io::rename(const std::string& from, const std::string& to) {
    return inner_.rename(from, to);
}

}  // namespace conveyor::storage

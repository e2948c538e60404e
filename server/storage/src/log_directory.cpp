#include "conveyor/storage/log_directory.hpp"

#include <vector>

#include "conveyor/storage/log_format.hpp"

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <utility>

namespace conveyor::storage {

namespace {

namespace fs = std::filesystem;

std::string join(const std::string& dir, std::string_view name) {
    std::string path = dir;
    if (!path.empty() && path.back() != '/') path += '/';
    path += name;
    return path;
}

// Good records in a segment that recovery will not deliver: those before its end or first
// bad frame, plus the good frames found after that (estimate_dropped's resynchronisation).
std::size_t count_good_records(std::string_view bytes, const scan_options& options) {
    segment_scanner scanner(bytes, options);
    core::record r;
    scan_status s = scanner.next(r);
    while (s == scan_status::record) s = scanner.next(r);
    std::size_t n = scanner.records_read();
    if (s != scan_status::clean_end) {
        n += estimate_dropped(bytes, scanner.valid_end(), options).good_records;
    }
    return n;
}

// Why the scanner stopped, as a phrase without file or offset.
std::string describe_stop(const segment_scanner& scanner) {
    switch (scanner.error()) {
        case scan_error::header_bad:
            return "bad segment header (" + std::string(to_string(scanner.header_error())) + ")";
        case scan_error::bad_record:
            return "a frame with a good CRC holds a record that does not decode (" +
                   std::string(to_string(scanner.record_error())) + ")";
        default:
            return std::string(to_string(scanner.error()));
    }
}

// The state of one pass over the segments, in order.
class directory_scanner {
public:
    directory_scanner(file_io& io, const record_callback& on_record, scan_options options)
        : io_(io), on_record_(on_record), options_(options) {}

    // Returns false when the file could not be read (result.error is set).
    bool add(std::uint64_t sequence, const std::string& path, bool newest, directory_scan& result);

private:
    void scan_live(const std::string& path, bool newest, segment_summary& seg,
                   directory_scan& result);
    void add_after_damage(segment_summary& seg);
    void set_damage(directory_scan& result, const std::string& path, std::size_t offset,
                    std::string reason);

    file_io& io_;
    const record_callback& on_record_;
    scan_options options_;
    std::string bytes_;  // the current segment, whole: read one file at a time
    bool damaged_ = false;
    bool have_previous_ = false;
    std::uint64_t previous_ = 0;
    log_damage* damage_ = nullptr;  // into result.outcome, once damaged_
};

bool directory_scanner::add(std::uint64_t sequence, const std::string& path, bool newest,
                            directory_scan& result) {
    if (std::error_code ec = io_.read_all(path, bytes_)) {
        result.error = ec;
        result.error_path = path;
        return false;
    }
    segment_summary seg{.path = path, .sequence = sequence, .bytes = bytes_.size()};
    if (!damaged_ && have_previous_ && sequence != previous_ + 1) {
        set_damage(result, path, 0,
                   "segment " + segment_file_name(previous_ + 1) + " is missing: the sequence " +
                       "jumps from " + std::to_string(previous_) + " to " +
                       std::to_string(sequence));
    }
    have_previous_ = true;
    previous_ = sequence;
    if (damaged_) {
        add_after_damage(seg);
    } else {
        scan_live(path, newest, seg, result);
    }
    result.segments.push_back(std::move(seg));
    return true;
}

void directory_scanner::scan_live(const std::string& path, bool newest, segment_summary& seg,
                                  directory_scan& result) {
    const segment_header header = parse_segment_header(bytes_);
    if (header.error == header_error::none && header.sequence != seg.sequence) {
        set_damage(result, path, 12,
                   "the header says sequence " + std::to_string(header.sequence) +
                       " but the file name says " + std::to_string(seg.sequence));
        add_after_damage(seg);
        return;
    }
    segment_scanner scanner(bytes_, options_);
    core::record r;
    scan_status s = scanner.next(r);
    while (s == scan_status::record) {
        if (on_record_) on_record_(r);
        ++result.records;
        s = scanner.next(r);
    }
    seg.records = scanner.records_read();
    const std::size_t offset = scanner.valid_end();
    if (s == scan_status::clean_end) {
        seg.zero_tail = scanner.zero_tail();
        return;
    }
    if (s == scan_status::torn_tail && newest) {
        result.outcome = log_torn_tail{path, offset, bytes_.size() - offset};
        return;
    }
    std::string reason = describe_stop(scanner);
    if (s == scan_status::torn_tail) {
        reason +=
            " at the end of a segment that is not the newest (it was complete when the "
            "next segment was created)";
    } else if (scanner.error() != scan_error::bad_record) {
        reason += ", and good records follow it";
    }
    set_damage(result, path, offset, std::move(reason));
    damage_->records_after_estimate += estimate_dropped(bytes_, offset, options_).good_records;
    damage_->bytes_after += bytes_.size() - offset;
}

// A segment after the damage (or removed by it): all of it would be dropped.
void directory_scanner::add_after_damage(segment_summary& seg) {
    seg.after_damage = true;
    seg.records = count_good_records(bytes_, options_);
    damage_->records_after_estimate += seg.records;
    damage_->bytes_after += bytes_.size();
}

void directory_scanner::set_damage(directory_scan& result, const std::string& path,
                                   std::size_t offset, std::string reason) {
    damaged_ = true;
    result.outcome = log_damage{.path = path, .offset = offset, .reason = std::move(reason)};
    damage_ = &std::get<log_damage>(result.outcome);
}

}  // namespace

io_result<std::vector<std::pair<std::uint64_t, std::string>>> list_segments(
    const std::string& dir) {
    io_result<std::vector<std::pair<std::uint64_t, std::string>>> out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        const auto sequence = parse_segment_file_name(name);
        if (!sequence) continue;
        std::error_code type_ec;
        if (!it->is_regular_file(type_ec)) continue;
        out.value.emplace_back(*sequence, join(dir, name));
    }
    if (ec) {
        out.error = ec;
        out.value.clear();
        return out;
    }
    std::sort(out.value.begin(), out.value.end());
    return out;
}

directory_scan scan_log_directory(file_io& io, const std::string& dir,
                                  const record_callback& on_record, scan_options options) {
    directory_scan result;
    auto listing = list_segments(dir);
    if (listing.error) {
        result.error = listing.error;
        result.error_path = dir;
        return result;
    }
    directory_scanner scanner(io, on_record, options);
    const auto& files = listing.value;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const bool newest = i + 1 == files.size();
        if (!scanner.add(files[i].first, files[i].second, newest, result)) return result;
    }
    return result;
}

namespace {

// Cuts the log at `offset` of `path`. Later segments go first, newest first, and the cut
// comes last: a repair interrupted at any step (a failed call, a crash) leaves a directory
// that still scans as damaged, never one that scans clean with a hole in the middle, so it
// can simply be run again. The bad segment itself is removed when the cut falls inside its
// header.
std::error_code cut_log(file_io& io, const std::string& dir, const std::string& path,
                        std::size_t offset, repair_result& result) {
    auto listing = list_segments(dir);
    if (listing.error) {
        result.error_path = dir;
        return listing.error;
    }
    std::vector<std::string> doomed;  // segments after the cut, oldest first
    bool after = false;
    for (const auto& entry : listing.value) {
        if (after) doomed.push_back(entry.second);
        after = after || entry.second == path;
    }
    auto step = [&](const std::string& file, std::error_code ec) {
        if (ec) result.error_path = file;
        return ec;
    };
    for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) {
        if (auto ec = step(*it, io.remove(*it))) return ec;
        ++result.files_removed;
    }
    if (!doomed.empty()) {
        if (auto ec = step(dir, io.sync_directory(dir))) return ec;
    }
    if (offset >= segment_header_size) return step(path, io.truncate(path, offset));
    if (auto ec = step(path, io.remove(path))) return ec;
    ++result.files_removed;
    return step(dir, io.sync_directory(dir));
}

}  // namespace

repair_result repair_log_directory(file_io& io, const std::string& dir, scan_options options) {
    repair_result result;
    directory_scan scan = scan_log_directory(io, dir, {}, options);
    if (!scan.ok()) {
        result.error = scan.error;
        result.error_path = scan.error_path;
        return result;
    }
    result.before = scan.outcome;
    std::string path;
    std::size_t offset = 0;
    if (const auto* torn = std::get_if<log_torn_tail>(&scan.outcome)) {
        path = torn->path;
        offset = torn->offset;
        result.bytes_dropped = torn->bytes_dropped;
    } else if (const auto* damage = std::get_if<log_damage>(&scan.outcome)) {
        path = damage->path;
        offset = damage->offset;
        result.records_dropped = damage->records_after_estimate;
        result.bytes_dropped = damage->bytes_after;
    } else {
        return result;
    }
    result.error = cut_log(io, dir, path, offset, result);
    return result;
}

}  // namespace conveyor::storage

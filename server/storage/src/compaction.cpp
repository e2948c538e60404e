// Log compaction: see durable_log.hpp for the rules and why each step is crash-safe.
#include "conveyor/storage/durable_log.hpp"
#include "conveyor/storage/segment_scanner.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace conveyor::storage {
namespace {

// A pass holds the ids of the closed log; past this many it stops at a segment boundary
// (the rest waits for the next pass).
constexpr std::size_t max_ids_per_pass = 4'000'000;
constexpr std::size_t ids_per_question = 65'536;
// Step 1 also notes, per segment, which id each record names (8 bytes a record), up to this
// many records a pass: step 3 then removes an all-dead oldest segment without reading it
// again. Segments of large records (where a second read costs most) are the ones that fit.
constexpr std::size_t max_listed_records = 1'000'000;

}  // namespace

compaction_stats durable_log::compaction() const {
    std::lock_guard lk(mu_);
    return compaction_;
}

std::error_code durable_log::rewrite_segment(const std::string& path, std::uint64_t sequence,
                                             const std::string& bytes,
                                             const std::function<bool(std::string_view id)>& keep,
                                             bool removable, rewrite_outcome& outcome) {
    outcome = {};
    segment_scanner scanner(bytes, read_options());
    std::string out;
    append_segment_header(sequence, out);
    std::string_view payload;
    while (true) {
        // valid_end() is 0 until the header has been read.
        const std::size_t start = std::max(scanner.valid_end(), segment_header_size);
        const scan_status st = scanner.next_payload(payload);
        if (st != scan_status::record) {
            if (st != scan_status::clean_end) return std::make_error_code(std::errc::io_error);
            break;
        }
        if (keep(task_id_of(payload))) {
            if (out.capacity() < bytes.size()) out.reserve(bytes.size());
            out.append(bytes, start, scanner.valid_end() - start);
        } else {
            ++outcome.dropped;
        }
    }
    if (outcome.dropped == 0) return {};
    if (removable && out.size() == segment_header_size) {
        // Nothing left and nothing older: the oldest segment goes (no rewrite, no fsync of
        // a header-only copy). The directory is synced by the next rename or by compact().
        if (std::error_code ec = io_.remove(path)) return ec;
        outcome.saved = bytes.size();
        outcome.removed = true;
        return {};
    }
    if (std::error_code ec = replace_file(io_, options_.directory, path, path + ".compact", out)) {
        return ec;
    }
    outcome.saved = bytes.size() - out.size();
    return {};
}

std::error_code durable_log::compact(const liveness_fn& live) {
    std::lock_guard pass_lock(compact_mu_);
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t current = 0;
    {
        std::lock_guard lk(mu_);
        current = stats_.current_sequence;
    }
    auto listed = list_segments(options_.directory);
    if (listed.error) return listed.error;
    std::vector<std::pair<std::uint64_t, std::string>> closed;
    for (auto& s : listed.value) {
        if (current == 0 || s.first < current) closed.push_back(std::move(s));
    }
    if (closed.empty()) return {};

    // 1. The ids the closed segments mention (a prefix of them, if there are very many).
    using id_map = std::unordered_map<std::string, char>;
    id_map ids;
    // What step 1 saw of each segment: its size and, while under max_listed_records, the id
    // entry of each record in order (nullptr for a record without id). Nodes of an
    // unordered_map keep their address when it rehashes.
    struct seen_segment {
        std::uint64_t size = 0;
        bool listed = false;
        std::vector<const id_map::value_type*> records;
    };
    std::vector<seen_segment> seen;
    std::size_t listed_records = 0;
    std::size_t prefix = 0;
    std::string bytes;
    for (; prefix < closed.size(); ++prefix) {
        if (ids.size() >= max_ids_per_pass) break;
        if (std::error_code ec = io_.read_all(closed[prefix].second, bytes)) return ec;
        seen_segment& seg = seen.emplace_back();
        seg.size = bytes.size();
        seg.listed = listed_records < max_listed_records;
        segment_scanner scanner(bytes, read_options());
        std::string_view payload;
        scan_status st;
        while ((st = scanner.next_payload(payload)) == scan_status::record) {
            const std::string_view id = task_id_of(payload);
            const id_map::value_type* entry = nullptr;
            if (!id.empty()) entry = &*ids.try_emplace(std::string(id), 0).first;
            if (seg.listed) seg.records.push_back(entry);
        }
        if (seg.listed) listed_records += seg.records.size();
        if (st != scan_status::clean_end) {
            return std::make_error_code(std::errc::io_error);  // damage: leave it to recovery
        }
        if (stop_compactor_.load(std::memory_order_acquire)) return {};
    }

    // 2. Which still exist, asked in slices so the owner is never held long.
    std::uint64_t position = 0;
    {
        std::vector<std::string> question;
        std::vector<std::unordered_map<std::string, char>::iterator> where;
        auto ask = [&]() -> bool {
            if (question.empty()) return true;
            auto answer = live(std::move(question));
            question.clear();
            if (!answer || answer->live.size() != where.size()) return false;
            for (std::size_t i = 0; i < where.size(); ++i) where[i]->second = answer->live[i];
            position = std::max(position, answer->position);
            where.clear();
            return true;
        };
        for (auto it = ids.begin(); it != ids.end(); ++it) {
            question.push_back(it->first);
            where.push_back(it);
            if (question.size() == ids_per_question && !ask()) return {};
        }
        if (!ask()) return {};
    }
    // Every change that ended a task must be durable before its history is dropped.
    while (released() < position) {
        if (failed() || stop_compactor_.load(std::memory_order_acquire)) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }

    // 3. Rewrite, oldest first.
    bool kept_any = false;  // a record before this point of the log was kept
    auto keep = [&](std::string_view id) {
        bool k;
        if (id.empty()) {
            k = kept_any;  // QPURGE/DEL with nothing kept before it changes nothing
        } else {
            auto it = ids.find(std::string(id));
            k = it == ids.end() || it->second != 0;
        }
        kept_any = kept_any || k;
        return k;
    };
    std::uint64_t saved_total = 0;
    std::uint64_t dropped_total = 0;
    std::uint64_t rewritten = 0;
    std::uint64_t removed = 0;
    std::vector<std::uint64_t> sizes(prefix, 0);
    std::size_t gone = 0;  // segments [0, gone) of the pass are removed
    auto forget_segment = [&](std::uint64_t bytes_left) {
        std::lock_guard lk(mu_);
        closed_segments_bytes_ -= std::min<std::uint64_t>(closed_segments_bytes_, bytes_left);
        stats_.log_bytes -= std::min<std::uint64_t>(stats_.log_bytes, bytes_left);
        if (stats_.segments > 0) --stats_.segments;
    };
    // For a listed segment, what keep() would do to its records, without reading it again:
    // nothing dropped, it stays as it is; nothing kept while it is the oldest, it goes (as
    // rewrite_segment() would decide from the bytes).
    struct forecast {
        std::size_t kept = 0, dropped = 0;
        bool kept_any = false;
    };
    auto predict = [&](const seen_segment& seg) {
        forecast f;
        f.kept_any = kept_any;
        for (const id_map::value_type* e : seg.records) {
            const bool k = e ? e->second != 0 : f.kept_any;
            f.kept_any = f.kept_any || k;
            ++(k ? f.kept : f.dropped);
        }
        return f;
    };
    for (std::size_t i = 0; i < prefix; ++i) {
        // The segment's size and what became of it: from step 1's notes where they decide
        // (nothing dropped: left unread; nothing kept while oldest: removed unread), else
        // from reading and rewriting it.
        std::uint64_t size = seen[i].size;
        rewrite_outcome o;
        std::error_code ec;
        const std::optional<forecast> f =
            seen[i].listed ? std::optional<forecast>(predict(seen[i])) : std::nullopt;
        if (f && f->dropped == 0) {
            kept_any = f->kept_any;
        } else if (f && f->kept == 0 && gone == i) {
            ec = io_.remove(closed[i].second);
            o = {size, f->dropped, true};
        } else {
            if ((ec = io_.read_all(closed[i].second, bytes))) return ec;
            size = bytes.size();
            ec = rewrite_segment(closed[i].second, closed[i].first, bytes, keep, gone == i, o);
        }
        if (ec) {
            if (removed > 0) io_.sync_directory(options_.directory);
            return ec;
        }
        sizes[i] = size - o.saved;
        saved_total += o.saved;
        dropped_total += o.dropped;
        if (o.removed) {
            ++removed;
            ++gone;
            forget_segment(size);
            continue;
        }
        if (o.dropped == 0) continue;
        ++rewritten;
        std::lock_guard lk(mu_);
        closed_segments_bytes_ -= std::min(closed_segments_bytes_, o.saved);
        stats_.log_bytes -= std::min(stats_.log_bytes, o.saved);
    }

    // 4. Remove the oldest segments that hold nothing (never one in the middle: the log's
    // sequence numbers stay contiguous): those emptied above by an earlier pass's rewrite.
    for (std::size_t i = gone; i < prefix && sizes[i] <= segment_header_size; ++i) {
        if (std::error_code ec = io_.remove(closed[i].second)) return ec;
        ++removed;
        forget_segment(sizes[i]);
    }
    if (removed > 0) {
        if (std::error_code ec = io_.sync_directory(options_.directory)) return ec;
    }

    std::lock_guard lk(mu_);
    ++compaction_.passes;
    compaction_.segments_rewritten += rewritten;
    compaction_.segments_removed += removed;
    compaction_.records_dropped += dropped_total;
    compaction_.bytes_reclaimed += saved_total;
    compaction_.appended_at_last_pass = position;
    compaction_.last_pass_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count();
    compaction_.last_error.clear();
    closed_after_pass_ = closed_segments_bytes_;
    return {};
}

void durable_log::start_compactor(liveness_fn live) {
    compactor_ =
        std::thread([this, live = std::move(live)]() mutable { run_compactor(std::move(live)); });
}

void durable_log::run_compactor(liveness_fn live) {
    // Background work: a nice of 10 for this thread only (Linux), so a pass takes the CPU the
    // core thread and the machine's other work leave. A failure changes nothing else.
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
    std::unique_lock lk(mu_);
    while (!stop_compactor_.load(std::memory_order_acquire)) {
        compactor_cv_.wait_for(lk, std::chrono::seconds(1));
        if (stop_compactor_.load(std::memory_order_acquire) || failed()) continue;
        // Due when the closed segments doubled since the last pass (each byte is then read a
        // bounded number of times), or a minute passed with new records (tasks ended since).
        const std::uint64_t closed = closed_segments_bytes_;
        const bool grown = closed >= 2 * closed_after_pass_;
        const bool stale =
            std::chrono::steady_clock::now() - last_pass_end_ >= std::chrono::seconds(60) &&
            appended_ > compaction_.appended_at_last_pass;
        const bool due = closed >= options_.segment_target_bytes && (grown || stale);
        if (!due) continue;
        lk.unlock();
        const std::error_code ec = compact(live);
        lk.lock();
        last_pass_end_ = std::chrono::steady_clock::now();
        if (ec) {
            compaction_.last_error = ec.message();
            closed_after_pass_ = closed_segments_bytes_;  // retry after more has been written
        }
    }
}

}  // namespace conveyor::storage

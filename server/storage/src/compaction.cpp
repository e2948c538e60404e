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

namespace {

using id_map = std::unordered_map<std::string, char>;

// What step 1 saw of a segment: its size and, while under max_listed_records, the id entry of
// each record in order (nullptr for a record without id). Nodes of an unordered_map keep
// their address when it rehashes.
struct seen_segment {
    std::uint64_t size = 0;
    bool listed = false;
    std::vector<const id_map::value_type*> records;
};

// For a listed segment, what keep() would do to its records, without reading it again:
// nothing dropped, it stays as it is; nothing kept while it is the oldest, it goes (as
// rewrite_segment() would decide from the bytes).
struct forecast {
    std::size_t kept = 0, dropped = 0;
    bool kept_any = false;
};

}  // namespace

// One pass of compact(), step by step (durable_log.hpp has the rules). A step that finds the
// pass must end without an error (the owner gone, the log stopping or failed) sets stopped_.
class durable_log::compaction_pass {
public:
    compaction_pass(durable_log& log, const liveness_fn& live) : log_(log), live_(live) {}

    std::error_code run() {
        if (std::error_code ec = list_closed()) return ec;
        if (closed_.empty()) return {};
        if (std::error_code ec = collect_ids(); ec || stopped_) return ec;
        if (!ask_liveness() || !wait_released()) return {};
        if (std::error_code ec = rewrite_all()) {
            if (removed_ > 0) log_.io_.sync_directory(log_.options_.directory);
            return ec;
        }
        if (std::error_code ec = remove_empty()) return ec;
        record_stats();
        return {};
    }

private:
    std::error_code list_closed() {
        std::uint64_t current = 0;
        {
            std::lock_guard lk(log_.mu_);
            current = log_.stats_.current_sequence;
        }
        auto listed = list_segments(log_.options_.directory);
        if (listed.error) return listed.error;
        for (auto& s : listed.value) {
            if (current == 0 || s.first < current) closed_.push_back(std::move(s));
        }
        return {};
    }

    // 1. The ids the closed segments mention (a prefix of them, if there are very many).
    std::error_code collect_ids() {
        std::size_t listed_records = 0;
        for (; prefix_ < closed_.size(); ++prefix_) {
            if (ids_.size() >= max_ids_per_pass) break;
            if (std::error_code ec = log_.io_.read_all(closed_[prefix_].second, bytes_)) return ec;
            seen_segment& seg = seen_.emplace_back();
            seg.size = bytes_.size();
            seg.listed = listed_records < max_listed_records;
            segment_scanner scanner(bytes_, log_.read_options());
            std::string_view payload;
            scan_status st;
            while ((st = scanner.next_payload(payload)) == scan_status::record) {
                const std::string_view id = task_id_of(payload);
                const id_map::value_type* entry = nullptr;
                if (!id.empty()) entry = &*ids_.try_emplace(std::string(id), 0).first;
                if (seg.listed) seg.records.push_back(entry);
            }
            if (seg.listed) listed_records += seg.records.size();
            if (st != scan_status::clean_end) {
                return std::make_error_code(std::errc::io_error);  // damage: leave it to recovery
            }
            if (log_.stopping()) {
                stopped_ = true;
                return {};
            }
        }
        return {};
    }

    // 2. Which still exist, asked in slices so the owner is never held long. False when the
    // owner did not answer (the pass ends).
    bool ask_liveness() {
        std::vector<std::string> question;
        std::vector<id_map::iterator> where;
        auto ask = [&]() -> bool {
            if (question.empty()) return true;
            auto answer = live_(std::move(question));
            question.clear();
            if (!answer || answer->live.size() != where.size()) return false;
            for (std::size_t i = 0; i < where.size(); ++i) where[i]->second = answer->live[i];
            position_ = std::max(position_, answer->position);
            where.clear();
            return true;
        };
        for (auto it = ids_.begin(); it != ids_.end(); ++it) {
            question.push_back(it->first);
            where.push_back(it);
            if (question.size() == ids_per_question && !ask()) return false;
        }
        return ask();
    }

    // Every change that ended a task must be durable before its history is dropped.
    bool wait_released() {
        while (log_.released() < position_) {
            if (log_.failed() || log_.stopping()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return true;
    }

    bool keep(std::string_view id) {
        bool k;
        if (id.empty()) {
            k = kept_any_;  // QPURGE/DEL with nothing kept before it changes nothing
        } else {
            auto it = ids_.find(std::string(id));
            k = it == ids_.end() || it->second != 0;
        }
        kept_any_ = kept_any_ || k;
        return k;
    }

    forecast predict(const seen_segment& seg) const {
        forecast f;
        f.kept_any = kept_any_;
        for (const id_map::value_type* e : seg.records) {
            const bool k = e ? e->second != 0 : f.kept_any;
            f.kept_any = f.kept_any || k;
            ++(k ? f.kept : f.dropped);
        }
        return f;
    }

    void forget_segment(std::uint64_t bytes_left) {
        std::lock_guard lk(log_.mu_);
        log_.closed_segments_bytes_ -= std::min(log_.closed_segments_bytes_, bytes_left);
        log_.stats_.log_bytes -= std::min(log_.stats_.log_bytes, bytes_left);
        if (log_.stats_.segments > 0) --log_.stats_.segments;
    }

    // 3. Rewrite, oldest first.
    std::error_code rewrite_all() {
        sizes_.assign(prefix_, 0);
        auto keep_fn = [this](std::string_view id) { return keep(id); };
        for (std::size_t i = 0; i < prefix_; ++i) {
            // The segment's size and what became of it: from step 1's notes where they decide
            // (nothing dropped: left unread; nothing kept while oldest: removed unread), else
            // from reading and rewriting it.
            std::uint64_t size = seen_[i].size;
            rewrite_outcome o;
            std::error_code ec;
            const std::optional<forecast> f =
                seen_[i].listed ? std::optional<forecast>(predict(seen_[i])) : std::nullopt;
            if (f && f->dropped == 0) {
                kept_any_ = f->kept_any;
            } else if (f && f->kept == 0 && gone_ == i) {
                ec = log_.io_.remove(closed_[i].second);
                o = {size, f->dropped, true};
            } else {
                if ((ec = log_.io_.read_all(closed_[i].second, bytes_))) return ec;
                size = bytes_.size();
                ec = log_.rewrite_segment(closed_[i].second, closed_[i].first, bytes_, keep_fn,
                                          gone_ == i, o);
            }
            if (ec) return ec;
            note_outcome(i, size, o);
        }
        return {};
    }

    void note_outcome(std::size_t i, std::uint64_t size, const rewrite_outcome& o) {
        sizes_[i] = size - o.saved;
        saved_total_ += o.saved;
        dropped_total_ += o.dropped;
        if (o.removed) {
            ++removed_;
            ++gone_;
            forget_segment(size);
            return;
        }
        if (o.dropped == 0) return;
        ++rewritten_;
        std::lock_guard lk(log_.mu_);
        log_.closed_segments_bytes_ -= std::min(log_.closed_segments_bytes_, o.saved);
        log_.stats_.log_bytes -= std::min(log_.stats_.log_bytes, o.saved);
    }

    // 4. Remove the oldest segments that hold nothing (never one in the middle: the log's
    // sequence numbers stay contiguous): those emptied above by an earlier pass's rewrite.
    std::error_code remove_empty() {
        for (std::size_t i = gone_; i < prefix_ && sizes_[i] <= segment_header_size; ++i) {
            if (std::error_code ec = log_.io_.remove(closed_[i].second)) return ec;
            ++removed_;
            forget_segment(sizes_[i]);
        }
        if (removed_ > 0) return log_.io_.sync_directory(log_.options_.directory);
        return {};
    }

    void record_stats() {
        std::lock_guard lk(log_.mu_);
        compaction_stats& c = log_.compaction_;
        ++c.passes;
        c.segments_rewritten += rewritten_;
        c.segments_removed += removed_;
        c.records_dropped += dropped_total_;
        c.bytes_reclaimed += saved_total_;
        c.appended_at_last_pass = position_;
        c.last_pass_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started_)
                             .count();
        c.last_error.clear();
        log_.closed_after_pass_ = log_.closed_segments_bytes_;
    }

    durable_log& log_;
    const liveness_fn& live_;
    const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::vector<std::pair<std::uint64_t, std::string>> closed_;
    id_map ids_;
    std::vector<seen_segment> seen_;
    std::size_t prefix_ = 0;  // closed_[0, prefix_) are this pass's
    std::string bytes_;
    std::uint64_t position_ = 0;  // the log position the liveness answers hold for
    bool kept_any_ = false;       // a record before this point of the log was kept
    bool stopped_ = false;
    std::uint64_t saved_total_ = 0, dropped_total_ = 0, rewritten_ = 0, removed_ = 0;
    std::vector<std::uint64_t> sizes_;  // of each segment after step 3
    std::size_t gone_ = 0;              // segments [0, gone_) of the pass are removed
};

std::error_code durable_log::compact(const liveness_fn& live) {
    std::lock_guard pass_lock(compact_mu_);
    return compaction_pass(*this, live).run();
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

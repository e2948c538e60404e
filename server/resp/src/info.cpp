#include <conveyor/resp/info.hpp>

#include <conveyor/runtime/log_text.hpp>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>

namespace conveyor::server {
namespace {

struct info_out {
    std::string text;
    void header(std::string_view name) {
        if (!text.empty()) text += "\r\n";
        text += "# ";
        text += name;
        text += "\r\n";
    }
    template <class T>
    void field(std::string_view name, const T& value) {
        text += name;
        text += ':';
        if constexpr (std::is_arithmetic_v<T>)
            text += std::to_string(value);
        else
            text += value;
        text += "\r\n";
    }
};

std::size_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

std::string human_bytes(std::size_t n) {
    char buf[32];
    if (n < 1024)
        std::snprintf(buf, sizeof buf, "%zuB", n);
    else if (n < 1024 * 1024)
        std::snprintf(buf, sizeof buf, "%.2fK", n / 1024.0);
    else if (n < 1024ull * 1024 * 1024)
        std::snprintf(buf, sizeof buf, "%.2fM", n / 1048576.0);
    else
        std::snprintf(buf, sizeof buf, "%.2fG", n / 1073741824.0);
    return buf;
}

void section_server(info_out& o, broker_service& s) {
    o.header("Server");
    o.field("conveyor_version", std::string(CONVEYOR_VERSION));
    o.field("redis_version", std::string("7.0.0"));  // the Redis feature level we speak
    o.field("redis_mode", std::string("standalone"));
    o.field("process_id", static_cast<long>(getpid()));
    o.field("tcp_port", static_cast<int>(s.config().port));
    auto up = std::chrono::steady_clock::now() - s.started();
    o.field("uptime_in_seconds",
            static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(up).count()));
    o.field("data_dir", s.config().data_dir);
    o.field("config_file", s.config().config_file);
}

void section_clients(info_out& o, broker_service& s) {
    o.header("Clients");
    o.field("connected_clients", s.counters().connected_clients);
    o.field("blocked_clients", s.counters().blocked_clients);
}

void section_memory(info_out& o, broker_service& s) {
    const std::size_t used = broker_service::memory_in_use();
    o.header("Memory");
    o.field("used_memory", used);
    o.field("used_memory_human", human_bytes(used));
    const std::size_t rss = rss_bytes();
    o.field("used_memory_rss", rss);
    o.field("used_memory_rss_human", human_bytes(rss));
    o.field("payload_bytes", s.core().stats().payload_bytes);
    const auto max = static_cast<std::size_t>(s.config().maxmemory_bytes);
    o.field("maxmemory", max);
    o.field("maxmemory_human", human_bytes(max));
    o.field("maxmemory_policy", std::string("noeviction"));
    o.field("maxmemory_reached", max > 0 && used > max ? 1 : 0);
    o.field("oom_rejections", s.counters().oom_rejections);
}

void section_persistence(info_out& o, broker_service& s) {
    o.header("Persistence");
    o.field("loading", 0);
    auto* log = s.log();
    if (log == nullptr) {
        o.field("persistence_mode", std::string("none"));
        o.field("aof_enabled", 0);
        return;
    }
    const auto st = log->stats();
    o.field("persistence_mode", std::string("log"));
    o.field("aof_enabled", 1);  // what Redis tools look at to see that writes are logged
    o.field("log_fsync", std::string(storage::to_string(st.fsync)));
    o.field("log_dir", s.config().data_dir);
    o.field("log_bytes", st.log_bytes);
    o.field("log_segments", st.segments);
    o.field("log_current_segment", st.current_sequence);
    o.field("log_records_appended", st.records_appended);
    o.field("log_records_released", st.records_released);
    o.field("log_pending_bytes", st.pending_bytes);
    o.field("log_fsyncs", st.fsyncs);
    o.field("log_last_fsync_latency_us", st.last_fsync_us);
    o.field("log_max_fsync_latency_us", st.max_fsync_us);
    o.field("log_write_status", std::string(st.failure ? "err" : "ok"));
    if (st.failure) o.field("log_last_error", st.failure.message());
    o.field("aof_last_write_status", std::string(st.failure ? "err" : "ok"));
    o.field("log_disk_full", st.space_low ? 1 : 0);
    o.field("log_space_ahead_bytes", st.room_bytes);
    o.field("log_space_reserve_bytes", st.reserve_bytes);
    o.field("log_disk_full_events", st.space_shortages);
    const auto c = log->compaction();
    o.field("log_records_since_compaction", st.records_appended - c.appended_at_last_pass);
    o.field("compaction_passes", c.passes);
    o.field("compaction_segments_rewritten", c.segments_rewritten);
    o.field("compaction_segments_removed", c.segments_removed);
    o.field("compaction_records_dropped", c.records_dropped);
    o.field("compaction_bytes_reclaimed", c.bytes_reclaimed);
    o.field("compaction_last_pass_ms", c.last_pass_ms);
    if (!c.last_error.empty()) o.field("compaction_last_error", c.last_error);
    const auto& r = s.recovery();
    o.field("recovered_records", r.records);
    o.field("recovered_segments", r.segments);
    o.field("recovery_ms", r.duration_ms);
    o.field("recovery_downtime_ms", r.downtime_ms);
}

void section_stats(info_out& o, broker_service& s) {
    auto st = s.core().stats();
    o.header("Stats");
    o.field("total_connections_received", s.counters().connections_received);
    o.field("total_commands_processed", s.counters().commands_processed);
    o.field("rejected_connections", s.counters().rejected_connections);
    o.field("auth_failures", s.counters().auth_failures);
    o.field("noperm_rejections", s.counters().noperm_rejections);
    o.field("tasks_enqueued", st.tasks_enqueued);
    o.field("tasks_leased", st.tasks_leased);
    o.field("tasks_succeeded", st.tasks_succeeded);
    o.field("tasks_failed", st.tasks_failed);
    o.field("tasks_dead", st.tasks_dead);
    o.field("tasks_expired", st.tasks_expired);
    o.field("tasks_cancelled", st.tasks_cancelled);
    o.field("tasks_live", st.tasks_live);
}

void section_queues(info_out& o, broker_service& s) {
    o.header("Queues");
    auto queues = s.core().queues_snapshot();
    std::sort(queues.begin(), queues.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& q : queues) {
        // Escaped although names with control bytes are refused (queue_name.hpp): a log written
        // before that rule may still hold one, and it must not add lines to INFO.
        o.field(log_text(q.name, std::numeric_limits<std::size_t>::max()),
                "ready=" + std::to_string(q.ready) + ",delayed=" + std::to_string(q.delayed) +
                    ",leased=" + std::to_string(q.leased) + ",dead=" + std::to_string(q.dead));
    }
}

}  // namespace

std::string render_info(broker_service& service, const std::vector<std::string_view>& sections,
                        core::instant now) {
    service.core().tick(now);
    using section_fn = void (*)(info_out&, broker_service&);
    static constexpr std::pair<std::string_view, section_fn> all[] = {
        {"server", section_server}, {"clients", section_clients},
        {"memory", section_memory}, {"persistence", section_persistence},
        {"stats", section_stats},   {"queues", section_queues},
    };
    auto wanted = [&](std::string_view name) {
        if (sections.empty()) return true;
        for (auto s : sections) {
            std::string lower(s);
            std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
            if (lower == name || lower == "all" || lower == "everything" || lower == "default")
                return true;
        }
        return false;
    };
    info_out o;
    for (const auto& [name, fn] : all)
        if (wanted(name)) fn(o, service);
    return o.text;
}

}  // namespace conveyor::server

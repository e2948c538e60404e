#include "conveyor/core/records.hpp"

#include <type_traits>
#include <utility>

namespace conveyor::core {

std::string_view to_string(task_state s) noexcept {
    switch (s) {
        case task_state::queued:
            return "queued";
        case task_state::delayed:
            return "delayed";
        case task_state::leased:
            return "leased";
        case task_state::succeeded:
            return "succeeded";
        case task_state::dead:
            return "dead";
        case task_state::cancelled:
            return "cancelled";
    }
    return "unknown";
}

namespace {
// std::visit may throw (bad_variant_access on a valueless variant); these must not.
template <class Fn, std::size_t... I>
auto visit_record(const record& r, Fn fn, std::index_sequence<I...>) noexcept {
    using result = decltype(fn(std::get<0>(r)));
    result out{};
    static_cast<void>(((r.index() == I ? (out = fn(*std::get_if<I>(&r)), true) : false) || ...));
    return out;
}
template <class Fn>
auto visit_record(const record& r, Fn fn) noexcept {
    return visit_record(r, fn, std::make_index_sequence<std::variant_size_v<record>>{});
}
}  // namespace

const instant& record_time(const record& r) noexcept {
    static const instant none{};
    const instant* at = visit_record(r, [](const auto& rec) { return &rec.at; });
    return at != nullptr ? *at : none;
}

namespace {
std::string_view label(const rec_enqueue&) noexcept {
    return "enqueue";
}
std::string_view label(const rec_lease&) noexcept {
    return "lease";
}
std::string_view label(const rec_ack&) noexcept {
    return "ack";
}
std::string_view label(const rec_fail&) noexcept {
    return "fail";
}
std::string_view label(const rec_release&) noexcept {
    return "release";
}
std::string_view label(const rec_extend&) noexcept {
    return "extend";
}
std::string_view label(const rec_cancel&) noexcept {
    return "cancel";
}
std::string_view label(const rec_ttl_expired&) noexcept {
    return "ttl_expired";
}
std::string_view label(const rec_requeue&) noexcept {
    return "requeue";
}
std::string_view label(const rec_pop&) noexcept {
    return "pop";
}
std::string_view label(const rec_forget&) noexcept {
    return "forget";
}
std::string_view label(const rec_purge&) noexcept {
    return "purge";
}
std::string_view label(const rec_delete_queue&) noexcept {
    return "delete_queue";
}
}  // namespace

std::string_view record_name(const record& r) noexcept {
    return visit_record(r, [](const auto& rec) { return label(rec); });
}

std::string_view record_task_id(const record& r) noexcept {
    return visit_record(r, [](const auto& rec) -> std::string_view {
        using T = std::decay_t<decltype(rec)>;
        if constexpr (std::is_same_v<T, rec_purge> || std::is_same_v<T, rec_delete_queue>) {
            return {};
        } else {
            return rec.id;
        }
    });
}

namespace {

// Calls f(field, is_deadline) for every time field of a record: deadlines (mono us) and
// durations (ms). Rec is a record type, const or not.
template <class Rec, class F>
void for_each_time_field(Rec& r, F&& f) {
    using T = std::remove_const_t<Rec>;
    if constexpr (std::is_same_v<T, rec_enqueue>) {
        f(r.due_us, true);
        f(r.ttl_deadline_us, true);
        f(r.backoff_base_ms, false);
        f(r.backoff_max_ms, false);
        f(r.timeout_ms, false);
    } else if constexpr (std::is_same_v<T, rec_lease>) {
        f(r.deadline_us, true);
        f(r.lease_ms, false);
    } else if constexpr (std::is_same_v<T, rec_fail>) {
        f(r.retry_due_us, true);
    } else if constexpr (std::is_same_v<T, rec_release>) {
        f(r.due_us, true);
    } else if constexpr (std::is_same_v<T, rec_extend>) {
        f(r.deadline_us, true);
    }
}

// Calls fn(alternative) on the record's alternative; not std::visit, which may throw on a
// valueless variant.
template <class Record, class Fn, std::size_t... I>
void on_alternative(Record& r, Fn&& fn, std::index_sequence<I...>) noexcept {
    static_cast<void>(((r.index() == I ? (fn(*std::get_if<I>(&r)), true) : false) || ...));
}

template <class Record, class Fn>
void on_time_fields(Record& r, Fn&& fn) noexcept {
    on_alternative(
        r, [&](auto& rec) { for_each_time_field(rec, fn); },
        std::make_index_sequence<std::variant_size_v<record>>{});
}

}  // namespace

bool record_times_in_range(const record& r) noexcept {
    const std::int64_t limit_us = add_ms(record_time(r).mono_us, max_duration_ms);
    bool in_range = true;
    on_time_fields(r, [&](const std::int64_t& v, bool deadline) {
        if (v > (deadline ? limit_us : max_duration_ms)) in_range = false;
    });
    return in_range;
}

bool clamp_record_times(record& r) noexcept {
    const std::int64_t limit_us = add_ms(record_time(r).mono_us, max_duration_ms);
    bool changed = false;
    on_time_fields(r, [&](std::int64_t& v, bool deadline) {
        const std::int64_t max = deadline ? limit_us : max_duration_ms;
        if (v <= max) return;
        v = max;
        changed = true;
    });
    return changed;
}

}  // namespace conveyor::core

#include "task_index.hpp"

#include <cstring>
#include <functional>
#include <new>

namespace conveyor::core::detail {

task* make_task(std::string_view id, std::string_view name, std::string_view payload) {
    const std::size_t size = sizeof(task) + id.size() + name.size() + payload.size();
    void* block = ::operator new(size);
    auto* t = new (block) task{};
    t->id_len = static_cast<std::uint16_t>(id.size());
    t->name_len = static_cast<std::uint16_t>(name.size());
    t->payload_len = static_cast<std::uint32_t>(payload.size());
    char* out = reinterpret_cast<char*>(t + 1);
    if (!id.empty()) std::memcpy(out, id.data(), id.size());
    if (!name.empty()) std::memcpy(out + id.size(), name.data(), name.size());
    if (!payload.empty())
        std::memcpy(out + id.size() + name.size(), payload.data(), payload.size());
    return t;
}

void destroy_task(task* t) noexcept {
    t->~task();
    ::operator delete(static_cast<void*>(t));
}

namespace {
// Live tasks plus tombstones stay <= 7/8 of the slots (linear probing stays short at that
// load with a good hash); a rehash then sizes the table for a load of at most 1/2, clearing
// the tombstones, so erases pay for it in O(1) amortised. Shrinking below 1/8 live returns
// memory after a large queue drains.
constexpr std::size_t min_capacity = 16;
bool too_full(std::size_t used, std::size_t cap) {
    return used * 8 > cap * 7;
}
std::size_t capacity_for(std::size_t live) {
    std::size_t cap = min_capacity;
    while (cap < live * 2) cap *= 2;
    return cap;
}

constexpr unsigned tag_shift = 48;
constexpr std::uintptr_t pointer_mask = (std::uintptr_t{1} << tag_shift) - 1;

std::size_t hash_of(std::string_view id) noexcept { return std::hash<std::string_view>{}(id); }
std::uintptr_t tag_of(std::size_t hash) noexcept { return hash >> tag_shift; }
}  // namespace

task* task_index::task_of(std::uintptr_t slot) const noexcept {
    return reinterpret_cast<task*>(tagged_ ? (slot & pointer_mask) : slot);
}

std::uintptr_t task_index::slot_for(task* t, std::size_t hash) const noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(t);
    return tagged_ ? (p | (tag_of(hash) << tag_shift)) : p;
}

bool task_index::may_match(std::uintptr_t slot, std::size_t hash) const noexcept {
    return slot != tombstone && (!tagged_ || (slot >> tag_shift) == tag_of(hash));
}

// The slot holding `id`, or slots_.size() when it is not indexed.
std::size_t task_index::find_slot(std::string_view id, std::size_t hash) const noexcept {
    if (size_ == 0) return slots_.size();
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uintptr_t s = slots_[i];
        if (s == 0) return slots_.size();
        if (may_match(s, hash) && task_of(s)->id() == id) return i;
    }
}

task* task_index::find(std::string_view id) const noexcept {
    const std::size_t i = find_slot(id, hash_of(id));
    return i == slots_.size() ? nullptr : task_of(slots_[i]);
}

// Puts a slot at the first free or tombstone position of its probe path.
void task_index::place(std::uintptr_t slot, std::size_t hash) noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    while (slots_[i] > tombstone) i = (i + 1) & mask;
    if (slots_[i] == tombstone) --tombstones_;
    slots_[i] = slot;
}

void task_index::insert(task* t) {
    if (slots_.empty() || too_full(size_ + tombstones_ + 1, slots_.size()))
        rehash(capacity_for(size_ + 1));
    if (tagged_ && (reinterpret_cast<std::uintptr_t>(t) & ~pointer_mask) != 0) {
        // A pointer that uses the top bits: strip every tag and compare ids from now on.
        for (std::uintptr_t& s : slots_)
            if (s > tombstone) s &= pointer_mask;
        tagged_ = false;
    }
    const std::size_t hash = hash_of(t->id());
    place(slot_for(t, hash), hash);
    ++size_;
}

bool task_index::erase(const task* t) noexcept {
    const std::size_t i = find_slot(t->id(), hash_of(t->id()));
    if (i == slots_.size() || task_of(slots_[i]) != t) return false;
    slots_[i] = tombstone;
    ++tombstones_;
    --size_;
    if (size_ == 0) {
        std::vector<std::uintptr_t>().swap(slots_);
        tombstones_ = 0;
    } else if (slots_.size() > min_capacity && size_ * 8 < slots_.size()) {
        try {
            rehash(capacity_for(size_));
        } catch (const std::bad_alloc&) {
            // Keeping the larger table is correct, only less compact.
        }
    }
    return true;
}

void task_index::rehash(std::size_t new_capacity) {
    std::vector<std::uintptr_t> old(new_capacity, 0);
    old.swap(slots_);
    tombstones_ = 0;
    for (std::uintptr_t s : old) {
        if (s > tombstone) place(s, hash_of(task_of(s)->id()));
    }
}

}  // namespace conveyor::core::detail

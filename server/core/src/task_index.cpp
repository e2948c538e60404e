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
// Live tasks plus tombstones stay <= 7/8 of a table's slots (linear probing stays short at
// that load with a good hash); a resize then sizes the new table for a load of at most 1/2,
// which leaves the tombstones behind. Shrinking below 1/8 live returns memory after a large
// queue drains. Each insert and erase moves `migrate_budget` old slots: a growing table
// finishes moving (old capacity / 16 operations) long before the new one fills.
constexpr std::size_t min_capacity = 16;
constexpr std::size_t migrate_budget = 16;
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

std::size_t hash_of(std::string_view id) noexcept {
    return std::hash<std::string_view>{}(id);
}
std::uintptr_t tag_of(std::size_t hash) noexcept {
    return hash >> tag_shift;
}
}  // namespace

task_index::slot_array::slot_array(std::size_t count)
    : data(static_cast<std::uintptr_t*>(std::calloc(count, sizeof(std::uintptr_t)))), n(count) {
    if (!data) throw std::bad_alloc();
}

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

// The slot of `tab` holding `id`, or tab.slots.size() when it is not there.
std::size_t task_index::find_in(const table& tab, std::string_view id,
                                std::size_t hash) const noexcept {
    const std::size_t n = tab.slots.size();
    if (n == 0) return 0;
    const std::size_t mask = n - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uintptr_t s = tab.slots[i];
        if (s == 0) return n;
        if (may_match(s, hash) && task_of(s)->id() == id) return i;
    }
}

task* task_index::find(std::string_view id) const noexcept {
    if (size_ == 0) return nullptr;
    const std::size_t hash = hash_of(id);
    for (const table* tab : {&now_, &old_}) {
        const std::size_t i = find_in(*tab, id, hash);
        if (i != tab->slots.size()) return task_of(tab->slots[i]);
    }
    return nullptr;
}

// Puts a slot at the first free or tombstone position of its probe path.
void task_index::place(table& tab, std::uintptr_t slot, std::size_t hash) noexcept {
    const std::size_t mask = tab.slots.size() - 1;
    std::size_t i = hash & mask;
    while (tab.slots[i] > tombstone) i = (i + 1) & mask;
    if (tab.slots[i] == tombstone) --tab.tombstones;
    tab.slots[i] = slot;
}

// Makes room for one more task and settles the tagging mode for its pointer.
void task_index::prepare_insert(task* t) {
    if (now_.slots.empty()) {
        now_.slots = slot_array(min_capacity);
    } else if (too_full(size_ + now_.tombstones + 1, now_.slots.size())) {
        start_resize(capacity_for(size_ + 1));
    }
    if (tagged_ && (reinterpret_cast<std::uintptr_t>(t) & ~pointer_mask) != 0) untag_all();
}

void task_index::insert(task* t) {
    prepare_insert(t);
    const std::size_t hash = hash_of(t->id());
    place(now_, slot_for(t, hash), hash);
    ++size_;
    migrate(migrate_budget);
}

bool task_index::insert_unique(task* t) {
    prepare_insert(t);
    const std::string_view id = t->id();
    const std::size_t hash = hash_of(id);
    if (resizing() && find_in(old_, id, hash) != old_.slots.size()) return false;
    // Walk the probe run once: a match means the id is taken; otherwise the task goes to the
    // first tombstone seen, or to the empty slot that ends the run.
    const std::size_t mask = now_.slots.size() - 1;
    std::size_t reuse = now_.slots.size();
    std::size_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
        const std::uintptr_t s = now_.slots[i];
        if (s == 0) break;
        if (s == tombstone) {
            if (reuse == now_.slots.size()) reuse = i;
        } else if (may_match(s, hash) && task_of(s)->id() == id) {
            return false;
        }
    }
    if (reuse != now_.slots.size()) {
        i = reuse;
        --now_.tombstones;
    }
    now_.slots[i] = slot_for(t, hash);
    ++size_;
    migrate(migrate_budget);
    return true;
}

bool task_index::erase(const task* t) noexcept {
    if (size_ == 0) return false;
    const std::size_t hash = hash_of(t->id());
    bool erased = false;
    for (table* tab : {&now_, &old_}) {
        const std::size_t i = find_in(*tab, t->id(), hash);
        if (i == tab->slots.size()) continue;
        if (task_of(tab->slots[i]) != t) return false;  // ids are unique: another task has it
        tab->slots[i] = tombstone;
        ++tab->tombstones;
        erased = true;
        break;
    }
    if (!erased) return false;
    --size_;
    if (size_ == 0) {
        now_ = table{};
        old_ = table{};
        migrated_ = 0;
        tombstone_run_ = 0;
    } else if (now_.slots.size() > min_capacity && size_ * 8 < now_.slots.size()) {
        try {
            start_resize(capacity_for(size_));
        } catch (const std::bad_alloc&) {
            // Keeping the larger table is correct, only less compact.
        }
    } else {
        migrate(migrate_budget);
    }
    return true;
}

// Makes a fresh table of `new_capacity` the one inserts go to. A resize still under way is
// finished first (rare: only a burst of erases right after a resize started can cause it).
void task_index::start_resize(std::size_t new_capacity) {
    table fresh;
    fresh.slots = slot_array(new_capacity);  // may throw; nothing has changed yet
    migrate(old_.slots.size());
    old_ = std::move(now_);
    now_ = std::move(fresh);
    migrated_ = 0;
    tombstone_run_ = 0;
    migrate(migrate_budget);
}

// Moves up to `budget` old slots into the current table; frees the old one when done. A moved
// slot becomes a tombstone so that lookups still walk past it; once an empty slot follows a
// run of moved slots, no probe run can cross that run any more and it is emptied, so misses
// in the old table stay short while it drains.
void task_index::migrate(std::size_t budget) noexcept {
    while (budget-- > 0 && migrated_ < old_.slots.size()) {
        std::uintptr_t& s = old_.slots[migrated_];
        if (s == 0) {
            for (std::size_t j = tombstone_run_; j < migrated_; ++j) old_.slots[j] = 0;
            tombstone_run_ = migrated_ + 1;
        } else {
            if (s > tombstone) place(now_, s, hash_of(task_of(s)->id()));
            s = tombstone;  // keeps old probe runs intact for lookups
        }
        ++migrated_;
    }
    if (!old_.slots.empty() && migrated_ == old_.slots.size()) {
        old_ = table{};
        migrated_ = 0;
        tombstone_run_ = 0;
    }
}

// A pointer that uses the top bits arrived: strip every tag and compare ids from now on.
void task_index::untag_all() noexcept {
    for (table* tab : {&now_, &old_}) {
        for (std::uintptr_t& s : tab->slots) {
            if (s > tombstone) s &= pointer_mask;
        }
    }
    tagged_ = false;
}

}  // namespace conveyor::core::detail

// Memory per queued task, measured: a counting global operator new tracks the bytes the
// broker holds live. Two figures are reported: bytes requested from operator new, and the
// same rounded to glibc malloc chunks (request + 8, 16-byte granules, 32 minimum), which is
// what the process actually pays.
#include "core_fixture.hpp"

#include <cstdlib>
#include <iostream>
#include <new>

namespace {

struct heap_counter {
    std::int64_t requested = 0;
    std::int64_t chunks = 0;
};
heap_counter live;

constexpr std::size_t prefix = 16;  // keeps the returned block 16-byte aligned

std::int64_t chunk_of(std::size_t n) {
    const std::size_t chunk = (n + 8 + 15) & ~std::size_t{15};
    return static_cast<std::int64_t>(chunk < 32 ? 32 : chunk);
}

void* counted_alloc(std::size_t n) {
    void* block = std::malloc(n + prefix);
    if (block == nullptr) throw std::bad_alloc();
    *static_cast<std::size_t*>(block) = n;
    live.requested += static_cast<std::int64_t>(n);
    live.chunks += chunk_of(n);
    return static_cast<char*>(block) + prefix;
}

void counted_free(void* p) noexcept {
    if (p == nullptr) return;
    void* block = static_cast<char*>(p) - prefix;
    const std::size_t n = *static_cast<std::size_t*>(block);
    live.requested -= static_cast<std::int64_t>(n);
    live.chunks -= chunk_of(n);
    std::free(block);
}

}  // namespace

void* operator new(std::size_t n) {
    return counted_alloc(n);
}
void* operator new[](std::size_t n) {
    return counted_alloc(n);
}
void operator delete(void* p) noexcept {
    counted_free(p);
}
void operator delete[](void* p) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    counted_free(p);
}

namespace conveyor::core::testing {
namespace {

struct per_task {
    double requested;
    double chunks;
};

// Fills a broker with `n` tasks of a 100-byte payload; returns bytes held per task.
template <class Fill>
per_task measure(std::size_t n, Fill fill) {
    broker b{test_config()};
    const heap_counter before = live;
    fill(b, n);
    const heap_counter after = live;
    EXPECT_EQ(b.stats().tasks_live, n);
    return {double(after.requested - before.requested) / double(n),
            double(after.chunks - before.chunks) / double(n)};
}

const std::string payload_100(100, 'p');

TEST(memory, queued_100_byte_task_costs_under_200_bytes) {
    const instant now{1'000'000, 1'700'000'000'000};
    for (std::size_t n : {10'000u, 100'000u, 200'000u}) {
        const per_task pushed = measure(n, [&](broker& b, std::size_t count) {
            for (std::size_t i = 0; i < count; ++i) b.push("q", payload_100, list_end::back, now);
        });
        const per_task enqueued = measure(n, [&](broker& b, std::size_t count) {
            enqueue_options o;
            o.name = "send_email";
            for (std::size_t i = 0; i < count; ++i) b.enqueue("q", payload_100, o, now);
        });
        std::cout << "[ memory ] n=" << n << "  LPUSH 100 B: " << pushed.requested
                  << " B requested, " << pushed.chunks << " B in malloc chunks;"
                  << "  ENQUEUE NAME send_email 100 B: " << enqueued.requested << " / "
                  << enqueued.chunks << " B\n";
        EXPECT_LT(pushed.requested, 200.0) << n;
        EXPECT_LT(pushed.chunks, 215.0) << n;
    }
}

TEST(memory, draining_a_queue_returns_its_memory) {
    const instant now{1'000'000, 1'700'000'000'000};
    broker b{test_config()};
    const heap_counter before = live;
    for (int i = 0; i < 50'000; ++i) b.push("q", payload_100, list_end::back, now);
    while (!b.pop({{"q"}, list_end::front, 1000}, now).empty()) {
    }
    // All that may remain is the broker's small per-operation scratch capacity.
    EXPECT_LT(live.requested - before.requested, 4096);
    EXPECT_EQ(b.stats().tasks_live, 0u);
}

TEST(memory, leased_and_acked_tasks_leave_nothing_after_retention) {
    instant now{1'000'000, 1'700'000'000'000};
    broker b{test_config()};
    const heap_counter before = live;
    for (int i = 0; i < 2'000; ++i) b.push("q", payload_100, list_end::back, now);
    for (;;) {
        auto got = b.lease(lease_request{{"q"}, 100, std::nullopt}, now);
        if (got.empty()) break;
        std::vector<std::string> tokens;
        for (const auto& t : got) tokens.push_back(t.lease);
        for (const auto& token : tokens) b.ack(token, "ok", now);
    }
    now.mono_us += test_config().result_ttl_ms * 1000;
    b.tick(now);
    EXPECT_EQ(b.stats().tasks_live, 0u);
    EXPECT_LT(live.requested - before.requested, 4096);
}

}  // namespace
}  // namespace conveyor::core::testing

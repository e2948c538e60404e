// durable_log: group commit and release positions in each fsync mode, fail-stop on injected
// EIO, recovery of torn tails (every byte of the last record) and mid-log damage, and
// compaction checked against a live broker: after any number of passes, the state rebuilt
// from the log on disk equals the live state.
#include "random_broker_run.hpp"
#include "storage_fixture.hpp"

#include "conveyor/storage/durable_log.hpp"
#include "conveyor/storage/errors.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace {

using namespace conveyor;
using storage::durable_log;
using storage::fsync_mode;
namespace fs = std::filesystem;

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/conveyor-durable-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { fs::remove_all(path); }
    std::string str() const { return path.string(); }
};

core::record enqueue_record(int i) {
    core::rec_enqueue e;
    e.at = {1'000'000 + i, 1'700'000'000'000 + i};
    e.id = "t" + std::to_string(i);
    e.queue = "q";
    e.payload = "payload-" + std::to_string(i);
    return e;
}

storage::log_options options(const temp_dir& d, fsync_mode mode, std::uint64_t segment = 1 << 20) {
    storage::log_options o;
    o.directory = d.str();
    o.fsync = mode;
    o.segment_target_bytes = segment;
    return o;
}

std::vector<core::record> recover_all(storage::file_io& io, const temp_dir& d,
                                      storage::recovery_result* out = nullptr) {
    std::vector<core::record> got;
    durable_log log(io, options(d, fsync_mode::always));
    auto r = log.recover([&](const core::record& rec) { got.push_back(rec); });
    if (out) *out = r;
    return got;
}

// A log of `n` enqueue records in segment 1, written and closed.
void write_enqueues(storage::file_io& io, const temp_dir& d, int n) {
    durable_log log(io, options(d, fsync_mode::always));
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    ASSERT_FALSE(log.start({}));
    for (int i = 0; i < n; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
    log.kick();
    log.stop();
}

void wait_released(durable_log& log, std::uint64_t position) {
    for (int i = 0; i < 2000 && log.released() < position && !log.failed(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

TEST(durable_log, always_releases_a_kicked_batch_with_one_fsync) {
    temp_dir d;
    storage::posix_file_io io;
    {
        durable_log log(io, options(d, fsync_mode::always));
        ASSERT_FALSE(log.recover([](const core::record&) {}).error);
        ASSERT_FALSE(log.start({}));
        for (int i = 0; i < 100; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
        EXPECT_EQ(log.appended(), 100u);
        EXPECT_EQ(log.released(), 0u);  // appended is not durable until the kick
        log.kick();
        EXPECT_EQ(log.released(), 100u);
        EXPECT_EQ(log.stats().fsyncs, 1u);  // one group, one fsync
        log.stop();
    }
    auto got = recover_all(io, d);
    ASSERT_EQ(got.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(storage_test::same_record(got[i], enqueue_record(i)));
}

// kick(false): nobody waits for the batch, so it is written (a kill -9 loses nothing) but not
// synced, and released() does not move. The next kick(true), even with nothing pending,
// syncs once and releases everything written before it.
TEST(durable_log, always_kick_without_sync_writes_and_a_later_sync_releases_it) {
    temp_dir d;
    storage::posix_file_io io;
    {
        durable_log log(io, options(d, fsync_mode::always));
        ASSERT_FALSE(log.recover([](const core::record&) {}).error);
        ASSERT_FALSE(log.start({}));
        for (int i = 0; i < 10; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
        EXPECT_GT(log.pending_bytes(), 0u);
        log.kick(false);
        EXPECT_EQ(log.pending_bytes(), 0u);
        EXPECT_EQ(log.released(), 0u);
        EXPECT_TRUE(log.unsynced());
        EXPECT_EQ(log.stats().fsyncs, 0u);
        // Written: a second reader of the directory (recovery) already sees all ten.
        EXPECT_EQ(recover_all(io, d).size(), 10u);

        for (int i = 10; i < 15; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
        log.kick(false);
        EXPECT_EQ(log.released(), 0u);
        log.kick(true);  // nothing pending: syncs what the two kicks wrote
        EXPECT_EQ(log.released(), 15u);
        EXPECT_FALSE(log.unsynced());
        EXPECT_EQ(log.stats().fsyncs, 1u);
        log.kick(true);  // nothing written since: no second fsync
        EXPECT_EQ(log.stats().fsyncs, 1u);
        log.stop();
    }
    EXPECT_EQ(recover_all(io, d).size(), 15u);
}

// `always`, a synced kick with at least handoff_bytes pending: the sync thread writes and
// syncs it while the owner goes on (kick returns at once, nothing released yet); kicks meanwhile
// leave their batches to that thread, which syncs them too; released() moves only after each
// sync, told from the sync thread. A small batch afterwards is written inline again.
TEST(durable_log, always_hands_a_large_batch_to_the_sync_thread_and_releases_after_its_sync) {
    temp_dir d;
    storage::posix_file_io posix;
    storage::faulty_file_io io(posix);
    const std::string big(2000, 'b');
    auto big_record = [&](int i) {
        core::rec_enqueue e;
        e.at = {1'000'000 + i, 1'700'000'000'000 + i};
        e.id = "big" + std::to_string(i);
        e.queue = std::string("q");  // not = "q": g++ 12 -Wrestrict false positive
        e.payload = big;
        return core::record(e);
    };
    {
        auto o = options(d, fsync_mode::always);
        o.handoff_bytes = 16 * 1024;
        durable_log log(io, o);
        ASSERT_FALSE(log.recover([](const core::record&) {}).error);
        std::atomic<int> told_elsewhere{0};
        const auto owner = std::this_thread::get_id();
        ASSERT_FALSE(log.start([&] {
            if (std::this_thread::get_id() != owner) ++told_elsewhere;
        }));
        const std::uint64_t syncs_before = io.syncs();
        io.delay_syncs(std::chrono::milliseconds(200));
        for (int i = 0; i < 20; ++i) ASSERT_FALSE(log.append(big_record(i)));  // ~40 KB
        log.kick(true);
        EXPECT_EQ(log.released(), 0u);  // the sync thread is in its (slow) fdatasync
        EXPECT_FALSE(log.unsynced());   // it holds the writer, and syncs all it writes
        for (int i = 0; i < 2000 && log.pending_bytes() > 0; ++i)  // until it took the batch
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (int i = 20; i < 25; ++i) ASSERT_FALSE(log.append(big_record(i)));
        log.kick(false);  // left to the sync thread, which syncs it as well
        EXPECT_EQ(log.released(), 0u);
        wait_released(log, 25);
        EXPECT_EQ(log.released(), 25u);
        EXPECT_EQ(io.syncs() - syncs_before, 2u);  // one per batch it took
        EXPECT_GE(told_elsewhere.load(), 1);
        io.delay_syncs(std::chrono::milliseconds(0));
        // Below handoff_bytes: inline, durable when kick() returns.
        for (int i = 0; i < 3; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
        log.kick(true);
        EXPECT_EQ(log.released(), 28u);
        EXPECT_EQ(io.syncs() - syncs_before, 3u);
        log.stop();
    }
    EXPECT_EQ(recover_all(posix, d).size(), 28u);
}

TEST(durable_log, a_failed_fsync_on_the_sync_thread_is_never_released) {
    temp_dir d;
    storage::posix_file_io posix;
    storage::faulty_file_io io(posix);
    auto o = options(d, fsync_mode::always);
    o.handoff_bytes = 1;
    durable_log log(io, o);
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    std::atomic<bool> told{false};
    ASSERT_FALSE(log.start([&] { told = true; }));
    io.fail_sync(io.syncs() + 1, EIO);
    ASSERT_FALSE(log.append(enqueue_record(1)));
    log.kick(true);
    wait_released(log, 1);  // returns once the log failed
    EXPECT_TRUE(log.failed());
    EXPECT_TRUE(told.load());
    EXPECT_EQ(log.released(), 0u);
    EXPECT_EQ(log.append(enqueue_record(2)), storage::storage_errc::log_failed);
}

TEST(durable_log, everysec_and_no_release_once_written_by_the_storage_thread) {
    for (auto mode : {fsync_mode::everysec, fsync_mode::no}) {
        temp_dir d;
        storage::posix_file_io io;
        {
            durable_log log(io, options(d, mode));
            ASSERT_FALSE(log.recover([](const core::record&) {}).error);
            std::atomic<int> released_calls{0};
            ASSERT_FALSE(log.start([&] { ++released_calls; }));
            for (int i = 0; i < 10; ++i) ASSERT_FALSE(log.append(enqueue_record(i)));
            log.kick();
            wait_released(log, 10);
            EXPECT_EQ(log.released(), 10u);
            EXPECT_GE(released_calls.load(), 1);
            log.stop();  // syncs what is left in every mode
        }
        EXPECT_EQ(recover_all(io, d).size(), 10u);
    }
}

TEST(durable_log, a_failed_fsync_is_never_released_and_stops_the_log) {
    temp_dir d;
    storage::posix_file_io posix;
    storage::faulty_file_io io(posix);
    durable_log log(io, options(d, fsync_mode::always));
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    ASSERT_FALSE(log.start({}));
    ASSERT_FALSE(log.append(enqueue_record(1)));
    log.kick();
    ASSERT_EQ(log.released(), 1u);
    io.fail_sync(io.syncs() + 1, EIO);
    ASSERT_FALSE(log.append(enqueue_record(2)));
    log.kick();
    EXPECT_TRUE(log.failed());
    EXPECT_EQ(log.released(), 1u);
    EXPECT_EQ(log.stats().failure, std::error_code(EIO, std::system_category()));
    EXPECT_EQ(log.append(enqueue_record(3)), storage::storage_errc::log_failed);
    log.kick();
    EXPECT_EQ(log.released(), 1u);
}

TEST(durable_log, a_failed_write_on_the_storage_thread_is_never_released) {
    temp_dir d;
    storage::posix_file_io posix;
    storage::faulty_file_io io(posix);
    durable_log log(io, options(d, fsync_mode::everysec));
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    std::atomic<bool> told{false};
    ASSERT_FALSE(log.start([&] { told = true; }));  // writes the header and the space ahead
    io.fail_write(io.writes() + 1, EIO, 5);         // the first record's write
    ASSERT_FALSE(log.append(enqueue_record(1)));
    log.kick();
    wait_released(log, 1);  // returns once the log failed (it never releases record 1)
    EXPECT_TRUE(log.failed());
    EXPECT_TRUE(told.load());
    EXPECT_EQ(log.released(), 0u);
}

// T4: a crash can cut the newest segment anywhere inside its last record. Recovery keeps every
// earlier record, cuts the file there, and the log goes on from the next segment.
TEST(durable_log, recovery_cuts_a_torn_tail_at_every_byte_of_the_last_record) {
    temp_dir d;
    storage::posix_file_io io;
    write_enqueues(io, d, 5);
    const std::string seg = d.str() + "/" + storage::segment_file_name(1);
    const auto full = fs::file_size(seg);
    std::string frame;
    ASSERT_FALSE(storage::append_record_frame(enqueue_record(4), frame));
    const auto last_start = full - frame.size();
    const std::string original = [&] {
        std::ifstream in(seg, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    for (auto cut = last_start + 1; cut < full; ++cut) {
        {
            std::ofstream out(seg, std::ios::binary | std::ios::trunc);
            out.write(original.data(), static_cast<std::streamsize>(cut));
        }
        // Remove segments a previous round created.
        for (auto& e : fs::directory_iterator(d.path)) {
            if (e.path().filename() != storage::segment_file_name(1)) fs::remove(e.path());
        }
        storage::recovery_result r;
        auto got = recover_all(io, d, &r);
        ASSERT_FALSE(r.error) << cut;
        ASSERT_TRUE(std::holds_alternative<storage::log_torn_tail>(r.outcome)) << cut;
        EXPECT_EQ(std::get<storage::log_torn_tail>(r.outcome).offset, last_start) << cut;
        EXPECT_EQ(got.size(), 4u) << cut;
        EXPECT_EQ(fs::file_size(seg), last_start) << "the torn record is cut off, cut " << cut;
        // The cut log is clean, and writing goes on.
        durable_log log(io, options(d, fsync_mode::always));
        storage::recovery_result again = log.recover([](const core::record&) {});
        EXPECT_TRUE(std::holds_alternative<storage::log_clean>(again.outcome));
        ASSERT_FALSE(log.start({}));
        ASSERT_FALSE(log.append(enqueue_record(9)));
        log.kick();
        EXPECT_EQ(log.released(), 1u);
    }
}

TEST(durable_log, a_bit_flip_mid_log_refuses_recovery_naming_file_and_offset) {
    temp_dir d;
    storage::posix_file_io io;
    write_enqueues(io, d, 20);
    const std::string seg = d.str() + "/" + storage::segment_file_name(1);
    std::string frame;
    ASSERT_FALSE(storage::append_record_frame(enqueue_record(0), frame));
    const std::size_t third_frame = storage::segment_header_size + 2 * frame.size();
    {
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(third_frame + 12));
        char c = 0;
        f.seekg(static_cast<std::streamoff>(third_frame + 12));
        f.get(c);
        f.seekp(static_cast<std::streamoff>(third_frame + 12));
        f.put(static_cast<char>(c ^ 0x10));
    }
    const auto before = fs::file_size(seg);
    storage::recovery_result r;
    recover_all(io, d, &r);
    ASSERT_TRUE(std::holds_alternative<storage::log_damage>(r.outcome));
    const auto& damage = std::get<storage::log_damage>(r.outcome);
    EXPECT_EQ(damage.path, seg);
    EXPECT_EQ(damage.offset, third_frame);
    EXPECT_EQ(damage.records_after_estimate, 17u);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(fs::file_size(seg), before) << "damage is reported, never cut at start";
}

// Compaction against a live broker: random commands (enqueue, lease, ack, fail, pop, purge,
// cancel, time passing so results expire), the log rotating every few KiB, compaction passes
// in between. At each checkpoint the broker recovered from the directory equals the live one.
TEST(durable_log, compaction_keeps_exactly_the_live_state) {
    std::uint64_t dropped = 0, removed = 0;
    for (std::uint32_t seed = 1; seed <= 6; ++seed) {
        temp_dir d;
        storage::posix_file_io io;
        durable_log log(io, options(d, fsync_mode::always, 4096));
        ASSERT_FALSE(log.recover([](const core::record&) {}).error);
        ASSERT_FALSE(log.start({}));
        core::testing::random_run run(seed,
                                      [&](const core::record& r) { ASSERT_FALSE(log.append(r)); });
        auto live = [&](std::vector<std::string> ids) {
            storage::liveness_answer a;
            for (const auto& id : ids) a.live.push_back(run.live().contains(id) ? 1 : 0);
            a.position = log.appended();
            log.kick();  // what the server's event loop does before it waits again
            return std::optional<storage::liveness_answer>(std::move(a));
        };
        for (int i = 0; i < 1500; ++i) {
            run.step();
            log.kick();
            if (i % 100 == 99) {
                ASSERT_FALSE(log.compact(live)) << "seed " << seed;
            }
            if (i % 300 == 299) {
                durable_log reader(io, options(d, fsync_mode::always));
                core::broker rebuilt{core::testing::test_config()};
                auto r = reader.recover([&](const core::record& rec) { rebuilt.replay(rec); });
                ASSERT_TRUE(r.ok()) << "seed " << seed;
                run.check_against(rebuilt, false);
                ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << seed << " step " << i;
            }
        }
        const auto c = log.compaction();
        dropped += c.records_dropped;
        removed += c.segments_removed;
        EXPECT_LT(log.stats().log_bytes, 64u * 4096) << "seed " << seed;
    }
    // The runs must have dropped history and whole segments, or they would prove little.
    EXPECT_GT(dropped, 1000u);
    EXPECT_GT(removed, 10u);
}

// Oldest segments whose records are all dead are removed without writing a header-only copy
// first; a segment after a kept one is rewritten. Then recovery sees exactly the live task.
TEST(durable_log, compaction_removes_a_dead_prefix_without_rewriting_it) {
    temp_dir d;
    storage::posix_file_io posix;
    storage::faulty_file_io io(posix);  // counts the files created (a rewrite creates one)
    durable_log log(io, options(d, fsync_mode::always, 4096));
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    ASSERT_FALSE(log.start({}));
    const std::string big(1000, 'p');
    auto enqueue = [&](const std::string& id) {
        core::rec_enqueue e;
        e.at = {1, 1};
        e.id = id;
        e.queue = std::string("q");  // not = "q": g++ 12 -Wrestrict false positive
        e.payload = big;
        ASSERT_FALSE(log.append(e));
        log.kick();
    };
    for (int i = 0; i < 20; ++i) enqueue("dead" + std::to_string(i));  // ~5 segments
    for (int i = 0; i < 20; ++i) {
        ASSERT_FALSE(log.append(core::rec_pop{{2, 2}, "dead" + std::to_string(i)}));
        log.kick();
    }
    enqueue("live");
    for (int i = 0; i < 8; ++i) enqueue("filler" + std::to_string(i));  // close live's segment
    const std::uint64_t segments_before = log.stats().segments;
    const std::uint64_t creates_before = io.creates();
    const std::uint64_t reads_before = io.reads();
    auto live = [&](std::vector<std::string> ids) {
        storage::liveness_answer a;
        for (const auto& id : ids) a.live.push_back(id.rfind("dead", 0) == 0 ? 0 : 1);
        a.position = log.appended();
        return std::optional<storage::liveness_answer>(std::move(a));
    };
    ASSERT_FALSE(log.compact(live));
    const auto c = log.compaction();
    EXPECT_GE(c.segments_removed, 4u);
    EXPECT_EQ(log.stats().segments, segments_before - c.segments_removed);
    // Only segments holding both dead and kept records were rewritten (a temp file each).
    EXPECT_EQ(io.creates() - creates_before, c.segments_rewritten);
    EXPECT_LE(c.segments_rewritten, 2u);
    // Step 1 read each closed segment once; step 3 read again only those it rewrote: by the
    // ids step 1 noted, the dead ones went and the all-live ones (fillers) stayed unread.
    const std::uint64_t closed_segments = segments_before - 1;
    EXPECT_GT(closed_segments, c.segments_removed + c.segments_rewritten);  // some all-live
    EXPECT_EQ(io.reads() - reads_before, closed_segments + c.segments_rewritten);
    log.stop();
    std::set<std::string> ids;
    for (const auto& r : recover_all(posix, d)) {
        if (auto* e = std::get_if<core::rec_enqueue>(&r)) ids.insert(e->id);
    }
    EXPECT_TRUE(ids.contains("live"));
    for (const auto& id : ids) EXPECT_NE(id.rfind("dead", 0), 0u) << id;
}

// Properties reach the disk (as tag-14 enqueue records) and come back at recovery, also after
// compaction rewrote the segments around the record that carries them.
TEST(durable_log, recovery_and_compaction_keep_task_properties) {
    temp_dir d;
    storage::posix_file_io io;
    const std::string props = std::string("\x90\x00\x02", 3) + "ex\x03key" + '\0';
    const auto config = core::testing::test_config();
    core::instant now{1'000'000, 1'700'000'000'000};
    durable_log log(io, options(d, fsync_mode::always, 4096));
    ASSERT_FALSE(log.recover([](const core::record&) {}).error);
    ASSERT_FALSE(log.start({}));
    core::broker b{config};
    b.set_record_sink([&](const core::record& r) { ASSERT_FALSE(log.append(r)); });
    core::enqueue_options o;
    o.properties = props;
    o.id = "keep";
    b.enqueue("q", "kept task", o, now);
    auto got = b.lease(core::lease_request{{"q"}, 1, std::nullopt}, now);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(b.release(got[0].lease, 0, now), core::op_status::ok);
    // Tasks that end and are forgotten: their records are what compaction drops.
    for (int i = 0; i < 300; ++i) {
        core::enqueue_options filler;
        filler.properties = "f" + std::to_string(i);
        b.enqueue("other", std::string(40, 'x'), filler, now);
        auto f = b.lease(core::lease_request{{"other"}, 1, std::nullopt}, now);
        ASSERT_EQ(f.size(), 1u);
        EXPECT_EQ(f[0].properties, "f" + std::to_string(i));
        b.ack(f[0].lease, "", now);
        log.kick();
    }
    now.mono_us += config.result_ttl_ms * 1000;
    b.tick(now);
    log.kick();
    auto live = [&](std::vector<std::string> ids) {
        storage::liveness_answer a;
        for (const auto& id : ids) a.live.push_back(b.contains(id) ? 1 : 0);
        a.position = log.appended();
        log.kick();
        return std::optional<storage::liveness_answer>(std::move(a));
    };
    ASSERT_FALSE(log.compact(live));
    EXPECT_GT(log.compaction().records_dropped, 600u);
    log.stop();

    durable_log reader(io, options(d, fsync_mode::always));
    core::broker rebuilt{config};
    auto r = reader.recover([&](const core::record& rec) { rebuilt.replay(rec); });
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(rebuilt.stats().tasks_live, 1u);
    EXPECT_EQ(rebuilt.stats().payload_bytes, 9 + props.size());
    auto again = rebuilt.lease(core::lease_request{{"q"}, 1, std::nullopt}, now);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].id, "keep");
    EXPECT_EQ(again[0].payload, "kept task");
    EXPECT_EQ(again[0].properties, props);
    EXPECT_EQ(again[0].attempt, 1);
}

}  // namespace

// T6, disk full: once the disk cannot give more space, changes that add work are refused,
// changes to existing tasks still fit in the space reserved ahead (down to the floor), nothing
// fails, and the log takes new work again by itself once space returns. In both threading
// models (inline under `always`, a storage thread under `everysec`).
TEST(durable_log, a_full_disk_refuses_new_work_keeps_finishing_and_recovers_by_itself) {
    for (const fsync_mode mode : {fsync_mode::always, fsync_mode::everysec}) {
        SCOPED_TRACE(std::string(storage::to_string(mode)));
        temp_dir d;
        storage::posix_file_io posix;
        storage::faulty_file_io io(posix);
        storage::log_options o = options(d, mode, 1 << 20);
        o.preallocate_chunk = 4096;
        o.space_floor = 256;
        o.space_retry = std::chrono::milliseconds(0);
        std::uint64_t appended = 0;
        {
            durable_log log(io, o);
            ASSERT_FALSE(log.recover([](const core::record&) {}).error);
            ASSERT_FALSE(log.start({}));
            log.set_reserve(4096);
            auto append_and_release = [&](const core::record& r) {
                ASSERT_FALSE(log.append(r));
                ++appended;
                log.kick();
                wait_released(log, appended);
                ASSERT_EQ(log.released(), appended);
            };
            append_and_release(enqueue_record(0));
            EXPECT_GE(log.stats().room_bytes, 8192u - 4096u);
            EXPECT_FALSE(log.admit(storage::change_kind::adds, 100));

            io.set_disk_full(true);
            // Records go on until the log wants more space ahead and cannot get it.
            int i = 1;
            while (!log.space_low()) {
                ASSERT_LT(i, 10'000) << "the log never noticed the full disk";
                append_and_release(enqueue_record(i++));
            }
            EXPECT_EQ(log.admit(storage::change_kind::adds, 100), storage::storage_errc::no_space);
            // The reserved space takes changes to existing tasks until only the floor is left.
            const std::uint64_t room_when_full = log.stats().room_bytes;
            EXPECT_GT(room_when_full, 4096u);
            int finished = 0;
            while (!log.admit(storage::change_kind::finishes, 64)) {
                ASSERT_LT(finished, 10'000);
                append_and_release(core::rec_ack{{}, "t" + std::to_string(finished), ""});
                ++finished;
            }
            EXPECT_GT(finished, 50);
            EXPECT_LE(log.stats().room_bytes, 64u + o.space_floor + 64u);
            EXPECT_FALSE(log.failed());
            EXPECT_EQ(log.stats().space_shortages, 1u);

            // Space returns: the next try takes it, and new work is admitted again.
            io.set_disk_full(false);
            log.retry_space();
            for (int k = 0; k < 2000 && log.space_low(); ++k) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            EXPECT_FALSE(log.space_low());
            EXPECT_FALSE(log.admit(storage::change_kind::adds, 100));
            append_and_release(enqueue_record(100'000));
            log.stop();
        }
        // Everything released is on disk, and the zeros ahead read as the end of the log.
        storage::recovery_result r;
        const auto got = recover_all(posix, d, &r);
        EXPECT_TRUE(std::holds_alternative<storage::log_clean>(r.outcome));
        EXPECT_EQ(got.size(), appended);
    }
}

// amqp_load: an AMQP 0-9-1 load tool for bench/amqp.sh. One connection, one channel, one
// thread, plain POSIX sockets, and the project's sans-IO codec (protocol/, docs/amqp.md), so it
// runs unchanged against conveyor's AMQP port and against rabbitmq-server.
//
//   amqp_load publish --port P --queue Q --count N --size BYTES [--confirm] [--window W]
//   amqp_load consume --port P --queue Q --count N [--prefetch K]
//   amqp_load delete  --port P --queue Q
//   common: [--host H] [--user guest] [--password guest] [--vhost /] [--timeout SECONDS]
//           [--batch-bytes B] (publish: bytes encoded per write batch, default 1 MiB)
//
// publish declares Q (durable) and publishes N persistent messages (delivery_mode 2) of BYTES
// to the default exchange. Without --confirm it ends with a passive queue.declare round trip,
// so the clock stops when the broker has taken every publish, not when the kernel has; with
// --confirm (confirm.select) at most W publishes are unconfirmed at a time, acks and nacks with
// and without `multiple` are counted, and the clock stops at the N-th settlement.
// consume sets basic.qos K, consumes Q with acks, and acks every delivery on its own
// (multiple=false, as pika and Celery users do); the acks of one read go out in one write. It
// stops at the N-th delivery, then cancels the consumer: the clock stops at cancel-ok, which
// the broker sends after it has handled the acks before it.
//
// Output: one JSON line on stdout, e.g.
//   {"mode":"publish","count":N,"seconds":S,"rate":R,"nacks":0,...}
// Errors (refused connection, Connection.Close or Channel.Close from the broker, timeout):
// a message on stderr and exit status 1.
//
// I/O: the socket is non-blocking; every pass of the loop writes the whole pending output in
// one send() and reads up to 256 KiB in one recv(), so syscalls scale with batches, not with
// messages.
#include "conveyor/protocol/amqp_command.hpp"
#include "conveyor/protocol/amqp_content.hpp"
#include "conveyor/protocol/amqp_frame.hpp"
#include "conveyor/protocol/amqp_methods.hpp"
#include "conveyor/protocol/amqp_sasl.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace amqp = conveyor::protocol::amqp;
using steady = std::chrono::steady_clock;

namespace {

struct options {
    std::string mode;
    std::string host = "127.0.0.1";
    std::string port = "5672";
    std::string queue;
    std::string user = "guest";
    std::string password = "guest";
    std::string vhost = "/";
    std::uint64_t count = 0;
    std::size_t size = 100;
    bool confirm = false;
    std::uint64_t window = 1000;
    std::uint16_t prefetch = 100;
    double timeout_s = 600;
    // Publishing encodes a batch of up to this many bytes (at least one message) once the
    // previous batch is all written: one send() per batch when the socket keeps up, memory flat
    // at any --count.
    std::size_t batch_bytes = 1024 * 1024;
};

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what);
}

constexpr std::uint16_t channel = 1;
constexpr std::size_t read_chunk = 256 * 1024;

// Bytes read and not yet decoded: [begin_, end_) of data_, compacted before each read.
class input_buffer {
public:
    std::string_view view() const { return {data_.data() + begin_, end_ - begin_}; }
    void consume(std::size_t n) { begin_ += n; }
    char* prepare(std::size_t n) {
        if (begin_ == end_) {
            begin_ = end_ = 0;
        } else if (data_.size() - end_ < n && begin_ > 0) {
            std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (data_.size() - end_ < n) data_.resize(end_ + n);
        return data_.data() + end_;
    }
    void commit(std::size_t n) { end_ += n; }

private:
    std::vector<char> data_;
    std::size_t begin_ = 0, end_ = 0;
};

// One AMQP connection with channel 1 open. Sync helpers (call/expect) for set-up; pump() and
// next() for the measurement loops.
class amqp_client {
public:
    explicit amqp_client(const options& o)
        : decoder_(amqp::peer::client),
          deadline_(steady::now() + std::chrono::duration_cast<steady::duration>(
                                        std::chrono::duration<double>(o.timeout_s))) {
        connect_socket(o.host, o.port);
        handshake(o);
    }
    ~amqp_client() {
        if (fd_ >= 0) ::close(fd_);
    }
    amqp_client(const amqp_client&) = delete;
    amqp_client& operator=(const amqp_client&) = delete;

    std::string& out() { return out_; }
    std::size_t pending_out() const { return out_.size() - out_pos_; }
    std::uint32_t frame_max() const { return frame_max_; }

    template <class M>
    void send(const M& m, std::uint16_t ch = channel) {
        amqp::encode_method_frame(out_, ch, m);
    }

    // Waits for socket readiness (writable only while output is pending), writes all pending
    // output it can in one send(), reads once. Throws at the deadline or when the peer closes.
    void pump() {
        pollfd p{fd_, POLLIN, 0};
        if (pending_out() > 0) p.events |= POLLOUT;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - steady::now());
        if (left.count() <= 0) fail("timed out (--timeout)");
        int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0 && errno != EINTR) fail(std::string("poll: ") + std::strerror(errno));
        if (n <= 0) return;
        if (p.revents & (POLLOUT | POLLERR)) write_some();
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_some();
    }

    // The next complete command from what was read, or false (pump() again). Connection.Close
    // and Channel.Close from the broker throw with its reply code and text.
    bool next(amqp::command& cmd) {
        auto step = decoder_.feed(in_.view(), cmd);
        in_.consume(step.consumed);
        switch (step.status) {
            case amqp::decode_step_status::need_more:
                return false;
            case amqp::decode_step_status::heartbeat:
                return next(cmd);
            case amqp::decode_step_status::body_too_large:
                fail("body too large");
            case amqp::decode_step_status::error:
                fail("bad bytes from broker: " + decoder_.error().text);
            case amqp::decode_step_status::command:
                break;
        }
        if (auto* c = std::get_if<amqp::connection_close>(&cmd.method)) {
            send(amqp::connection_close_ok{}, 0);
            flush();
            fail("broker closed the connection: " + std::to_string(c->reply_code) + " " +
                 c->reply_text + " (" + amqp::describe({c->class_id, c->method_id}) + ")");
        }
        if (auto* c = std::get_if<amqp::channel_close>(&cmd.method)) {
            fail("broker closed the channel: " + std::to_string(c->reply_code) + " " +
                 c->reply_text + " (" + amqp::describe({c->class_id, c->method_id}) + ")");
        }
        return true;
    }

    // Writes everything pending, then reads until a command of type M arrives. Deliveries and
    // confirms that arrive meanwhile are dropped: only set-up and tear-down use this.
    template <class M>
    M expect() {
        flush();
        amqp::command cmd;
        for (;;) {
            while (next(cmd)) {
                if (auto* m = std::get_if<M>(&cmd.method)) return std::move(*m);
                if (std::holds_alternative<amqp::basic_deliver>(cmd.method) ||
                    std::holds_alternative<amqp::basic_ack>(cmd.method) ||
                    std::holds_alternative<amqp::basic_nack>(cmd.method) ||
                    std::holds_alternative<amqp::connection_blocked>(cmd.method) ||
                    std::holds_alternative<amqp::connection_unblocked>(cmd.method))
                    continue;
                fail("expected " + amqp::describe(M::id) + ", got " +
                     amqp::describe(amqp::key_of(cmd.method)));
            }
            pump();
        }
    }

    template <class Reply, class M>
    Reply call(const M& m, std::uint16_t ch = channel) {
        send(m, ch);
        return expect<Reply>();
    }

    void flush() {
        while (pending_out() > 0) pump();
    }

    void close() { call<amqp::connection_close_ok>(amqp::connection_close{200, "bye", 0, 0}, 0); }

private:
    void connect_socket(const std::string& host, const std::string& port) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
            fail(host + ": " + ::gai_strerror(rc));
        for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
            fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
            if (fd_ < 0) continue;
            if (::connect(fd_, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) break;
            ::close(fd_);
            fd_ = -1;
        }
        ::freeaddrinfo(res);
        if (fd_ < 0) fail("cannot connect to " + host + ":" + port);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 10000);
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || !(p.revents & POLLOUT))
            fail("cannot connect to " + host + ":" + port + ": " +
                 std::strerror(err ? err : ETIMEDOUT));
    }

    void handshake(const options& o) {
        out_.append(amqp::protocol_header);
        auto start = expect<amqp::connection_start>();
        if (start.mechanisms.find("PLAIN") == std::string::npos)
            fail("broker offers no PLAIN mechanism: " + start.mechanisms);
        amqp::field_table caps = amqp::make_table({{"publisher_confirms", true},
                                                   {"basic.nack", true},
                                                   {"consumer_cancel_notify", true},
                                                   {"authentication_failure_close", true}});
        amqp::connection_start_ok ok;
        ok.client_properties = amqp::make_table(
            {{"product", "conveyor amqp_load"}, {"platform", "C++20"}, {"capabilities", caps}});
        ok.mechanism = "PLAIN";
        ok.response = amqp::encode_plain_response(o.user, o.password);
        ok.locale = "en_US";
        auto tune = call<amqp::connection_tune>(ok, 0);
        // The broker's frame_max as proposed (0: no limit); no heartbeats.
        frame_max_ = amqp::effective_frame_max(tune.frame_max);
        send(amqp::connection_tune_ok{tune.channel_max, tune.frame_max, 0}, 0);
        decoder_.set_frame_max(tune.frame_max);
        call<amqp::connection_open_ok>(amqp::connection_open{o.vhost, "", false}, 0);
        call<amqp::channel_open_ok>(amqp::channel_open{});
    }

    void write_some() {
        ssize_t n = ::send(fd_, out_.data() + out_pos_, pending_out(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            fail(std::string("send: ") + std::strerror(errno));
        }
        out_pos_ += static_cast<std::size_t>(n);
        if (out_pos_ == out_.size()) {
            out_.clear();
            out_pos_ = 0;
        }
    }

    void read_some() {
        ssize_t n = ::recv(fd_, in_.prepare(read_chunk), read_chunk, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            fail(std::string("recv: ") + std::strerror(errno));
        }
        if (n == 0) fail("broker closed the socket");
        in_.commit(static_cast<std::size_t>(n));
    }

    int fd_ = -1;
    amqp::connection_decoder decoder_;
    input_buffer in_;
    std::string out_;
    std::size_t out_pos_ = 0;
    std::uint32_t frame_max_ = amqp::default_frame_max;
    steady::time_point deadline_;
};

// Publisher-confirm bookkeeping: tags 1..N, each settled once, acks and nacks with and without
// `multiple` (RabbitMQ sends both kinds).
class confirm_tracker {
public:
    explicit confirm_tracker(std::uint64_t n) : settled_(n + 1, 0) {}
    void settle(std::uint64_t tag, bool multiple, bool nack) {
        if (tag >= settled_.size()) fail("confirm for unknown delivery tag " + std::to_string(tag));
        ++frames_;
        if (multiple) ++multiple_frames_;
        if (multiple) {
            for (std::uint64_t t = floor_ + 1; t <= tag; ++t) mark(t, nack);
            floor_ = std::max(floor_, tag);
        } else {
            mark(tag, nack);
        }
    }
    std::uint64_t settled() const { return count_; }
    // basic.ack/basic.nack frames received, and how many of them had `multiple` set.
    std::uint64_t frames() const { return frames_; }
    std::uint64_t multiple_frames() const { return multiple_frames_; }
    std::uint64_t nacks() const { return nacks_; }

private:
    void mark(std::uint64_t t, bool nack) {
        if (settled_[t]) return;
        settled_[t] = 1;
        ++count_;
        if (nack) ++nacks_;
    }
    std::vector<std::uint8_t> settled_;
    std::uint64_t floor_ = 0, count_ = 0, nacks_ = 0, frames_ = 0, multiple_frames_ = 0;
};

// User + system CPU seconds of this process: near the wall time, the client was the limit.
double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

amqp::queue_declare_ok declare(amqp_client& c, const std::string& queue, bool passive) {
    amqp::queue_declare d;
    d.queue = queue;
    d.passive = passive;
    d.durable = true;
    return c.call<amqp::queue_declare_ok>(d);
}

void print_result(const options& o, double secs, double cpu, std::uint64_t nacks,
                  const std::string& extra) {
    std::printf(
        "{\"tool\":\"amqp_load\",\"mode\":\"%s\",\"queue\":\"%s\",\"count\":%llu,"
        "\"size\":%zu,\"confirm\":%s,\"window\":%llu,\"prefetch\":%u,\"seconds\":%.6f,"
        "\"rate\":%.1f,\"client_cpu\":%.3f,\"nacks\":%llu%s}\n",
        o.mode.c_str(), o.queue.c_str(), static_cast<unsigned long long>(o.count), o.size,
        o.confirm ? "true" : "false", static_cast<unsigned long long>(o.window), o.prefetch, secs,
        secs > 0 ? static_cast<double>(o.count) / secs : 0.0, secs > 0 ? cpu / secs : 0.0,
        static_cast<unsigned long long>(nacks), extra.c_str());
}

void run_publish(amqp_client& c, const options& o) {
    // Messages already in the queue (bench/amqp.sh uses fresh queues: 0).
    const std::uint64_t before = declare(c, o.queue, false).message_count;
    if (o.confirm) c.call<amqp::confirm_select_ok>(amqp::confirm_select{});
    amqp::basic_properties props;
    props.delivery_mode = 2;
    const std::string raw_props = amqp::encode_basic_properties(props);
    const std::string body(o.size, 'x');
    amqp::basic_publish publish;
    publish.routing_key = o.queue;
    confirm_tracker confirms(o.confirm ? o.count : 0);

    const auto t0 = steady::now();
    const double cpu0 = cpu_seconds();
    std::uint64_t published = 0;
    amqp::command cmd;
    for (;;) {
        const bool done = o.confirm ? confirms.settled() == o.count
                                    : published == o.count && c.pending_out() == 0;
        if (done) break;
        const bool refill = c.pending_out() == 0;
        while (refill && published < o.count && c.pending_out() < o.batch_bytes &&
               (!o.confirm || published - confirms.settled() < o.window)) {
            amqp::encode_content_command(c.out(), channel, publish, raw_props, body, c.frame_max());
            ++published;
        }
        c.pump();
        while (c.next(cmd)) {
            if (auto* a = std::get_if<amqp::basic_ack>(&cmd.method))
                confirms.settle(a->delivery_tag, a->multiple, false);
            else if (auto* n = std::get_if<amqp::basic_nack>(&cmd.method))
                confirms.settle(n->delivery_tag, n->multiple, true);
        }
    }
    // The clock stops when the queue holds every message: RabbitMQ answers a passive declare
    // right behind the last publish before its queue process has taken them all (its channel
    // hands messages on asynchronously), so poll, 1 ms apart. With confirms it holds them.
    std::uint32_t polls = 0;
    while (declare(c, o.queue, true).message_count < before + o.count - confirms.nacks()) {
        ++polls;
        ::usleep(1000);
    }
    const double secs = seconds_since(t0);
    print_result(o, secs, cpu_seconds() - cpu0, confirms.nacks(),
                 ",\"queue_polls\":" + std::to_string(polls) +
                     ",\"confirm_frames\":" + std::to_string(confirms.frames()) +
                     ",\"multiple_confirms\":" + std::to_string(confirms.multiple_frames()));
}

void run_consume(amqp_client& c, options o) {
    declare(c, o.queue, false);
    c.call<amqp::basic_qos_ok>(amqp::basic_qos{0, o.prefetch, false});
    amqp::basic_consume consume;
    consume.queue = o.queue;
    consume.consumer_tag = "amqp_load";
    const auto t0 = steady::now();
    const double cpu0 = cpu_seconds();
    c.send(consume);
    std::uint64_t received = 0;
    std::uint64_t bytes = 0;
    bool consuming = false;
    amqp::command cmd;
    while (received < o.count) {
        c.pump();
        while (received < o.count && c.next(cmd)) {
            if (auto* d = std::get_if<amqp::basic_deliver>(&cmd.method)) {
                ++received;
                bytes += cmd.body.size();
                c.send(amqp::basic_ack{d->delivery_tag, false});
            } else if (std::holds_alternative<amqp::basic_consume_ok>(cmd.method)) {
                consuming = true;
            } else if (std::holds_alternative<amqp::basic_cancel>(cmd.method)) {
                fail("the broker cancelled the consumer");
            }
        }
    }
    if (!consuming) c.expect<amqp::basic_consume_ok>();
    c.call<amqp::basic_cancel_ok>(amqp::basic_cancel{"amqp_load", false});
    const double secs = seconds_since(t0);
    o.size = static_cast<std::size_t>(bytes / o.count);
    print_result(o, secs, cpu_seconds() - cpu0, 0, "");
}

void run_delete(amqp_client& c, const options& o) {
    amqp::queue_delete d;
    d.queue = o.queue;
    auto ok = c.call<amqp::queue_delete_ok>(d);
    std::printf("{\"tool\":\"amqp_load\",\"mode\":\"delete\",\"queue\":\"%s\",\"messages\":%u}\n",
                o.queue.c_str(), ok.message_count);
}

[[noreturn]] void usage(int status) {
    std::fputs(
        "usage: amqp_load publish --queue Q --count N --size BYTES [--confirm] [--window W]\n"
        "       amqp_load consume --queue Q --count N [--prefetch K]\n"
        "       amqp_load delete  --queue Q\n"
        "common: [--host 127.0.0.1] [--port 5672] [--user guest] [--password guest]\n"
        "        [--vhost /] [--timeout 600] [--batch-bytes 1048576]\n",
        status == 0 ? stdout : stderr);
    std::exit(status);
}

options parse(int argc, char** argv) {
    if (argc < 2) usage(2);
    options o;
    o.mode = argv[1];
    if (o.mode == "-h" || o.mode == "--help") usage(0);
    if (o.mode != "publish" && o.mode != "consume" && o.mode != "delete") usage(2);
    for (int i = 2; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(2);
            return argv[++i];
        };
        if (a == "--host")
            o.host = value();
        else if (a == "--port")
            o.port = value();
        else if (a == "--queue")
            o.queue = value();
        else if (a == "--user")
            o.user = value();
        else if (a == "--password")
            o.password = value();
        else if (a == "--vhost")
            o.vhost = value();
        else if (a == "--count")
            o.count = std::stoull(value());
        else if (a == "--size")
            o.size = std::stoull(value());
        else if (a == "--window")
            o.window = std::stoull(value());
        else if (a == "--prefetch")
            o.prefetch = static_cast<std::uint16_t>(std::stoul(value()));
        else if (a == "--timeout")
            o.timeout_s = std::stod(value());
        else if (a == "--batch-bytes")
            o.batch_bytes = std::stoull(value());
        else if (a == "--confirm")
            o.confirm = true;
        else if (a == "-h" || a == "--help")
            usage(0);
        else
            usage(2);
    }
    if (o.queue.empty() || (o.mode != "delete" && o.count == 0) || o.window == 0) usage(2);
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception&) {
        usage(2);
    }
    try {
        amqp_client c(o);
        if (o.mode == "publish")
            run_publish(c, o);
        else if (o.mode == "consume")
            run_consume(c, o);
        else
            run_delete(c, o);
        c.close();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "amqp_load %s: %s\n", o.mode.c_str(), e.what());
        return 1;
    }
}

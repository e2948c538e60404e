#include "conveyor_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace conveyor::test {

namespace {

bool port_accepts(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

std::string binary_path() {
    const char* env = std::getenv("CONVEYOR_BIN");
    if (env == nullptr || *env == '\0')
        throw std::runtime_error("CONVEYOR_BIN is not set (ctest sets it to the conveyor binary)");
    return env;
}

}  // namespace

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error("cannot find a free port");
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string make_test_certs() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "conveyor-certs-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    // tests/client/ -> the source tree's conf/.
    auto script = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
                  "conf" / "gen-test-certs.sh";
    std::string command = "/bin/sh '" + script.string() + "' '" + tmpl + "'";
    if (std::system(command.c_str()) != 0)
        throw std::runtime_error("cannot make test certificates: " + command + " failed");
    return tmpl;
}

conveyor_server::conveyor_server(std::vector<std::string> extra_args, std::optional<server_tls> tls)
    : tls_(std::move(tls)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "conveyor-client-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (start_on(free_port(), extra_args)) return;
    }
    std::string why = log();
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("conveyor server did not start; log:\n" + why);
}

bool conveyor_server::start_on(std::uint16_t port, const std::vector<std::string>& extra_args) {
    std::vector<std::string> args{binary_path(), "server",       "--port",  std::to_string(port),
                                  "--data-dir",  dir_ + "/data", "--fsync", "no",
                                  "--log-level", "warn"};
    // No AMQP listener unless asked for: its default port (5673) would be shared by every
    // server the tests start in parallel.
    if (std::find(extra_args.begin(), extra_args.end(), "--amqp-port") == extra_args.end()) {
        args.insert(args.end(), {"--amqp-port", "0"});
    }
    std::uint16_t tls_port = 0;
    if (tls_) {
        tls_port = free_port();
        const std::string& d = tls_->cert_dir;
        args.insert(args.end(), {"--tls-port", std::to_string(tls_port), "--tls-cert",
                                 d + "/server.crt", "--tls-key", d + "/server.key", "--tls-ca",
                                 d + "/ca.crt", "--tls-auth-clients", tls_->auth_clients});
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    std::string log_path = dir_ + "/server.log";
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);

    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken, or bad flags
            pid_ = -1;
            return false;
        }
        if (port_accepts(port) && (tls_port == 0 || port_accepts(tls_port))) {
            port_ = port;
            tls_port_ = tls_port;
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    return false;
}

void conveyor_server::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

conveyor_server::~conveyor_server() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

client::server_url conveyor_server::url() const {
    client::server_url u;
    u.host = "127.0.0.1";
    u.port = port_;
    return u;
}

client::server_url conveyor_server::tls_url(std::string host) const {
    client::server_url u;
    u.host = std::move(host);
    u.port = tls_port_;
    u.tls = true;
    return u;
}

std::string conveyor_server::log() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace conveyor::test

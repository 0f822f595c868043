// `xsn serve`, `xsn send` and `xsn cluster status`: the distributed node and its two clients.
#include "serve.hpp"

#include "exit_codes.hpp"

#include "distributed/http_server.hpp"
#include "distributed/keys.hpp"
#include "distributed/node.hpp"
#include "distributed/serve_config.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/core/logging.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace xsn::inline v0::cli {
namespace {

namespace json = boost::json;
namespace dist = xsn::distributed;


// ---- logging to stderr ----
void log_to_stderr(bool as_json) {
  static std::mutex mutex;
  xsn::logging::configure(xsn::logging::level::info, [as_json](const xsn::logging::record& r) {
    std::lock_guard lock(mutex);
    const auto now = std::chrono::system_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    if (as_json) {
      json::object o{{"ts_ms", ms}, {"level", xsn::logging::to_string(r.severity)}, {"logger", r.logger},
                     {"msg", r.text}};
      std::cerr << json::serialize(o) << "\n";
    } else {
      std::cerr << ms << " " << xsn::logging::to_string(r.severity) << " " << r.logger << ": " << r.text << "\n";
    }
  });
}

// ---- documents: DIR/*.scxml and DIR/*.json, named by file stem ----
/// The documents in `dir`, sorted; false, reported, when the folder cannot be read.
bool list_documents(const std::string& dir, std::vector<std::filesystem::path>& files) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".scxml" || ext == ".json")) files.push_back(e.path());
  }
  if (ec) {
    std::cerr << "xsn serve: documents folder " << dir << ": " << ec.message() << "\n";
    return false;
  }
  std::sort(files.begin(), files.end());
  return true;
}

bool load_documents(const std::string& dir, dist::node& n, std::size_t& count) {
  std::vector<std::filesystem::path> files;
  if (!list_documents(dir, files)) return false;
  bool ok = true;
  for (const auto& f : files) {
    auto loaded = xsn::load_document(f);
    if (!loaded) {
      for (const auto& d : loaded.errors) std::cerr << d.to_string() << "\n";
      ok = false;
      continue;
    }
    if (auto r = n.add_document(f.stem().string(), loaded.chart); !r) {
      std::cerr << f.string() << ": " << r.error().message << "\n";
      ok = false;
      continue;
    }
    ++count;
  }
  return ok;
}

std::string hostname_id() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "node";
  return std::string(buf) + "-" + std::to_string(getpid());
}

dist::redis_endpoint endpoint_of(const dist::serve_config& c) {
  dist::redis_endpoint ep;
  ep.host = c.redis_host;
  ep.port = c.redis_port;
  ep.username = c.username;
  ep.password = c.password;
  ep.cluster = c.cluster;
  return ep;
}

/// Prints the usage error for argument `a`; returns false.
bool unknown_serve_argument(const std::string& a) {
  std::cerr << "xsn serve: unknown or incomplete argument '" << a << "'\n";
  return false;
}

/// `--http HOST:PORT` (port 0: any free port, printed) into `cfg`; false, reported, when wrong.
bool read_http(const std::string& text, dist::serve_config& cfg) {
  std::string err;
  auto hp = dist::parse_host_port(text, err);
  if (!hp && text.size() > 2 && text.ends_with(":0")) {  // port 0: any free port (printed)
    std::string ignored;
    hp = dist::parse_host_port(text.substr(0, text.size() - 1) + "1", ignored);
    if (hp) hp->second = 0;
  }
  if (!hp) {
    std::cerr << "xsn serve: --http: " << err << "\n";
    return false;
  }
  cfg.http_host = hp->first;
  cfg.http_port = hp->second;
  return true;
}

/// One option of `serve` with its value `v`; false, reported, when it is unknown or wrong.
bool read_serve_option(const std::string& a, const std::string& v, dist::serve_config& cfg, std::string& node_id,
                       bool& json_logs) {
  if (a == "--node-id") node_id = v;
  else if (a == "--http") return read_http(v, cfg);
  else if (a == "--log-format" && (v == "json" || v == "text")) json_logs = v == "json";
  else return unknown_serve_argument(a);
  return true;
}

/// Runs a node of `cfg` until a signal or a fatal error; returns the exit code.
int serve_node(const std::string& config_name, const dist::serve_config& cfg, const std::string& node_id);

}  // namespace

int cmd_serve(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help") {
    std::cerr << "usage: xsn serve CONFIG.json [--node-id ID] [--http HOST:PORT] [--log-format text|json]\n";
    return args.empty() ? exit_usage : 0;
  }
  auto parsed = dist::parse_serve_config(args[0]);
  if (!parsed) {
    std::cerr << parsed.error << "\n";
    return exit_load;
  }
  auto cfg = *parsed.config;
  std::string node_id = hostname_id();
  bool json_logs = false;
  for (std::size_t i = 1; i < args.size(); i += 2) {  // every option has a value
    if (i + 1 == args.size()) return unknown_serve_argument(args[i]), exit_usage;
    if (!read_serve_option(args[i], args[i + 1], cfg, node_id, json_logs)) return exit_usage;
  }
  log_to_stderr(json_logs);
  return serve_node(args[0], cfg, node_id);
}

namespace {

int serve_node(const std::string& config_name, const dist::serve_config& cfg, const std::string& node_id) {
  boost::asio::io_context io(1);
  dist::node_options no;
  no.node_id = node_id;
  no.redis = endpoint_of(cfg);
  no.prefix = cfg.prefix;
  no.partitions = cfg.partitions;
  no.lease = cfg.lease;
  no.http_address = cfg.http_host + ":" + std::to_string(cfg.http_port);
  int fatal_code = 0;
  std::function<void(const std::string&)> on_fatal;  // set below, once the node and server exist
  no.on_fatal = [&](const std::string& why) {
    if (on_fatal) on_fatal(why);
  };
  dist::node n(io, no);
  std::size_t count = 0;
  if (!load_documents(cfg.documents, n, count)) return exit_load;

  dist::http_server http(io.get_executor(), n);
  if (auto ec = http.listen(cfg.http_host, cfg.http_port)) {
    std::cerr << "xsn serve: cannot listen on " << cfg.http_host << ":" << cfg.http_port << ": " << ec.message() << "\n";
    return 1;
  }
  const auto ep = http.local_endpoint();
  http.start();
  n.start();
  std::cerr << "xsn serve: node " << node_id << " listening on http://" << ep.address().to_string() << ":" << ep.port()
            << " with " << count << " documents" << std::endl;

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  bool stopped = false;
  on_fatal = [&](const std::string& why) {
    std::cerr << "xsn serve: " << config_name << ": " << why << std::endl;
    fatal_code = exit_load;
    signals.cancel();
    http.stop();
    n.async_stop([&] {
      stopped = true;
      io.stop();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    std::cerr << "xsn serve: signal " << sig << ": handing partitions over" << std::endl;
    http.stop();
    n.async_stop([&] {
      stopped = true;
      io.stop();  // everything of the node is closed; the rest are idle timers of closed parts
    });
  });
  io.run();
  std::cerr << "xsn serve: stopped" << std::endl;
  if (fatal_code) return fatal_code;
  return stopped ? 0 : 1;
}

// ---- clients ----

struct client_args {
  std::optional<dist::redis_endpoint> redis;
  std::string prefix = "xsn:";
  bool prefix_set = false;
  std::vector<std::string> rest;
  bool json_out = false, wait = false;
  std::string key;
  std::chrono::milliseconds timeout{5000};
};

bool client_takes_value(const std::string& a) {
  return a == "--redis" || a == "--config" || a == "--prefix" || a == "--key" || a == "--timeout-ms";
}

/// `--config FILE`: the deployment's Redis and (unless `--prefix` came first) its prefix.
bool read_client_config(const std::string& file, client_args& out, std::string& err) {
  auto parsed = dist::parse_serve_config(file);
  if (!parsed) {
    err = parsed.error;
    return false;
  }
  out.redis = endpoint_of(*parsed.config);
  if (!out.prefix_set) out.prefix = parsed.config->prefix;
  return true;
}

/// A client option with its value `v`; false, with `err`, when the value is wrong.
bool read_client_value(const std::string& a, const std::string& v, client_args& out, std::string& err) {
  if (a == "--config") return read_client_config(v, out, err);
  if (a == "--redis") {
    auto hp = dist::parse_host_port(v, err);
    if (!hp) return false;
    dist::redis_endpoint ep;
    ep.host = hp->first;
    ep.port = hp->second;
    out.redis = ep;
  } else if (a == "--prefix") {
    out.prefix = v;
    out.prefix_set = true;
  } else if (a == "--key") {
    out.key = v;
  } else {  // --timeout-ms
    out.timeout = std::chrono::milliseconds(std::atoll(v.c_str()));
  }
  return true;
}

// --redis HOST:PORT | --config FILE, --prefix P, and the command's own flags.
bool parse_client(const std::vector<std::string>& args, client_args& out, std::string& err) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (client_takes_value(a) && i + 1 < args.size()) {
      if (!read_client_value(a, args[++i], out, err)) return false;
    } else if (a == "--json") {
      out.json_out = true;
    } else if (a == "--wait") {
      out.wait = true;
    } else if (a.starts_with("--")) {
      err = "unknown or incomplete argument '" + a + "'";
      return false;
    } else {
      out.rest.push_back(a);
    }
  }
  if (!out.redis) {
    err = "--redis HOST:PORT or --config FILE is required";
    return false;
  }
  return true;
}

/// `send`'s arguments and event (`{"name": EVENT, "data": JSON}`); false, reported, when wrong.
bool send_args(const std::vector<std::string>& args, client_args& ca, json::object& ev) {
  std::string err;
  if (!parse_client(args, ca, err) || ca.rest.size() < 2 || ca.rest.size() > 3) {
    if (!err.empty()) std::cerr << "xsn send: " << err << "\n";
    std::cerr << "usage: xsn send (--redis HOST:PORT | --config FILE) [--prefix P] MACHINE EVENT [JSON] [--wait]"
                 " [--key KEY] [--timeout-ms MS]\n";
    return false;
  }
  ev = json::object{{"name", ca.rest[1]}};
  if (ca.rest.size() < 3) return true;
  boost::system::error_code ec;
  auto data = json::parse(ca.rest[2], ec);
  if (ec) {
    std::cerr << "xsn send: invalid JSON data: " << ec.message() << "\n";
    return false;
  }
  ev["data"] = std::move(data);
  return true;
}

/// The reply a node published for `send --wait`: prints its body; the exit code, or std::nullopt
/// for a payload that is not a reply.
std::optional<int> print_reply(std::string_view payload) {
  boost::system::error_code jec;
  auto v = json::parse(payload, jec);
  if (jec || !v.is_object()) return std::nullopt;
  const auto status = v.as_object().if_contains("status");
  std::cout << json::serialize(v.as_object().if_contains("body") ? v.at("body") : json::value{}) << "\n";
  return status && status->is_int64() && status->as_int64() < 300 ? 0 : 1;
}

/// True when a `GET` of the deployment's config answered a string (its partition count).
bool is_string_reply(std::error_code ec, const redisReply* r) { return !ec && r && r->type == REDIS_REPLY_STRING; }

/// The fields of the script call that appends event `ev` for `machine` to its stream.
std::vector<std::string> send_fields(const std::string& machine, const client_args& ca, const json::object& ev,
                                     const std::string& me) {
  std::vector<std::string> fields{"xadd", "100000", "op", "event", "to", machine, "key", ca.key, "event",
                                  json::serialize(ev)};
  if (ca.wait) {
    fields.push_back("reply");
    fields.push_back(me + "|1");
  }
  return fields;
}

/// What the append answered: an error (exit 1), the entry id (printed, exit 0, unless `wait`:
/// then the reply decides, std::nullopt).
std::optional<int> send_result(std::error_code ec, const redisReply* r, bool wait) {
  if (ec || dist::is_error(r)) {
    std::cerr << "xsn send: " << (ec ? ec.message() : std::string(dist::str(r))) << "\n";
    return 1;
  }
  if (wait) return std::nullopt;
  std::cout << dist::str(r) << "\n";
  return 0;
}

/// `cluster status`'s arguments; false, reported, when wrong.
bool cluster_args(const std::vector<std::string>& args, client_args& ca) {
  std::string err;
  if (!args.empty() && args[0] == "status" &&
      parse_client(std::vector<std::string>(args.begin() + 1, args.end()), ca, err) && ca.rest.empty())
    return true;
  if (!err.empty()) std::cerr << "xsn cluster: " << err << "\n";
  std::cerr << "usage: xsn cluster status (--redis HOST:PORT | --config FILE) [--prefix P] [--json]\n";
  return false;
}

/// `cluster status` as text.
void print_cluster(const json::object& o) {
  std::cout << "nodes:\n";
  for (const auto& nd : o.at("nodes").as_array()) {
    const auto& n = nd.as_object();
    std::cout << "  " << json::value_to<std::string>(n.at("owner"));
    if (const auto* h = n.if_contains("http"); h && h->is_string()) std::cout << "  http://" << std::string_view(h->as_string());
    std::cout << "\n";
  }
  std::cout << "partition  owner  epoch  stream_length  pending\n";
  for (const auto& pv : o.at("partitions").as_array()) {
    const auto& p = pv.as_object();
    std::cout << p.at("partition") << "  " << (p.at("owner").is_string() ? std::string(p.at("owner").as_string()) : "-")
              << "  " << p.at("epoch") << "  " << p.at("stream_length") << "  " << p.at("pending") << "\n";
  }
}

/// Runs `fn(link, finish, extra, strand)` on a fresh io_context until `finish(code)` or the
/// timeout; `extra` is a slot for a second connection (a subscriber), closed by `finish` and
/// destroyed before the io_context.
template <typename F>
int with_link(const dist::redis_endpoint& ep, std::chrono::milliseconds timeout, F fn) {
  boost::asio::io_context io(1);
  auto strand = boost::asio::make_strand(io.get_executor());
  auto link = dist::make_client(strand, ep);
  std::shared_ptr<dist::node_link> extra;
  int code = 1;
  boost::asio::steady_timer deadline(io, timeout);
  bool finished = false;
  auto finish = [&](int c) {
    if (finished) return;
    finished = true;
    code = c;
    deadline.cancel();
    link->close();
    if (extra) extra->close();
    io.stop();
  };
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "xsn: no answer from Redis " << ep.host << ":" << ep.port << " in time\n";
    finish(1);
  });
  boost::asio::post(strand, [&] { fn(link, finish, extra, strand); });
  io.run();
  return code;
}

}  // namespace

int cmd_send(const std::vector<std::string>& args) {
  client_args ca;
  json::object ev;
  if (!send_args(args, ca, ev)) return exit_usage;
  const dist::keyspace ks{ca.prefix};
  const auto machine = ca.rest[0];
  std::random_device rd;
  const auto me = "cli-" + std::to_string(rd()) + std::to_string(rd());
  if (ca.key.empty()) ca.key = me;
  return with_link(*ca.redis, ca.timeout, [&](auto link, auto& finish, auto& sub, auto strand) {
    // The deployment's partition count decides which stream the machine reads.
    auto send = [&, link](unsigned partitions) {
      link->script({ks.stream(dist::partition_of(machine, partitions))}, send_fields(machine, ca, ev, me),
                   [&](std::error_code ec, const redisReply* r) {
                     if (auto code = send_result(ec, r, ca.wait)) finish(*code);
                   });
    };
    auto start = [&, link, send] {
      link->command({"GET", ks.config()}, [&, send](std::error_code ec, const redisReply* r) {
        if (!is_string_reply(ec, r)) {
          std::cerr << "xsn send: no deployment under prefix '" << ca.prefix << "' (no " << ks.config() << ")\n";
          return finish(1);
        }
        send(static_cast<unsigned>(std::stoul(std::string(dist::str(r)))));
      });
    };
    if (!ca.wait) return start();
    // Subscribed first, so the answer cannot be missed.
    sub = dist::node_link::subscriber(
        strand, *ca.redis, ks.reply_channel(me),
        [&](std::string_view payload) {
          if (auto code = print_reply(payload)) finish(*code);
        },
        [start, started = std::make_shared<bool>(false)](bool up, const std::string&) {
          if (up && !*started) {
            *started = true;
            start();
          }
        });
  });
}

int cmd_cluster(const std::vector<std::string>& args) {
  client_args ca;
  if (!cluster_args(args, ca)) return exit_usage;
  const dist::keyspace ks{ca.prefix};
  return with_link(*ca.redis, ca.timeout, [&](auto link, auto& finish, auto&, auto) {
    link->command({"GET", ks.config()}, [&, link](std::error_code ec, const redisReply* r) {
      if (!is_string_reply(ec, r)) {
        std::cerr << "xsn cluster: no deployment under prefix '" << ca.prefix << "'\n";
        return finish(1);
      }
      const auto partitions = static_cast<unsigned>(std::stoul(std::string(dist::str(r))));
      dist::query_cluster(link, ks, partitions, [&](dist::reply rep) {
        if (rep.status != 200) {
          std::cerr << "xsn cluster: " << json::serialize(rep.body) << "\n";
          return finish(1);
        }
        if (ca.json_out) {
          std::cout << json::serialize(rep.body) << "\n";
          return finish(0);
        }
        print_cluster(rep.body.as_object());
        finish(0);
      });
    });
  });
}

}  // namespace xsn::inline v0::cli

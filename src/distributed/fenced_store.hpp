#pragma once
// Part of xsn_distributed (private): the state_store of one partition held by one node. Every
// write is one call of the node script's `write`, which first checks the partition's lease
// against this owner's fencing token ("<owner> <epoch>"): once the lease moved on, every write
// fails with `errc::fenced` and `on_fenced` is told (each time).
#include "keys.hpp"
#include "redis.hpp"

#include <xsn/store/state_store.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace xsn::inline v0::distributed {

class fenced_store final : public state_store, public std::enable_shared_from_this<fenced_store> {
 public:
  /// Keys must start with `ks.machine_prefix(partition)`; `link` runs the node script.
  fenced_store(boost::asio::any_io_executor ex, std::shared_ptr<redis_client> link, keyspace ks, unsigned partition,
               std::string fence, std::function<void()> on_fenced);

  /// Writes refused because the lease moved on.
  std::uint64_t fenced_writes() const noexcept { return fenced_.load(std::memory_order_relaxed); }
  /// Writes and reads that failed otherwise (connection, timeout, script error).
  std::uint64_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }

 protected:
  void do_get(std::string key, get_handler handler) override;
  void do_put(std::string key, std::string value, put_options opts, write_handler handler) override;
  void do_compare_and_set(std::string key, store_version expected, std::string value, put_options opts,
                          write_handler handler) override;
  void do_erase(std::string key, std::optional<store_version> expected, write_handler handler) override;
  void do_list(std::string prefix, list_options opts, list_handler handler) override;
  void do_write_batch(std::vector<batch_write> writes, batch_handler handler) override;
  watch_handle do_watch(std::string prefix, watch_callback fn) override;
  store_health do_health() const override;

 private:
  struct record_write {
    std::string key;
    char kind = 'p';  // p put, c compare-and-set, e erase, x erase if version
    store_version expected = 0;
    std::string value;
  };
  /// One script call for `entries` (all in this partition); `done` gets one result each.
  void write(std::vector<record_write> entries, std::function<void(std::error_code, std::vector<batch_result>)> done);
  void write_one(record_write e, write_handler handler);
  std::error_code error_of(std::error_code ec, const redisReply* r);

  std::shared_ptr<redis_client> link_;
  keyspace ks_;
  unsigned partition_;
  std::string fence_;
  std::string prefix_;
  std::function<void()> on_fenced_;
  std::atomic<std::uint64_t> fenced_{0}, errors_{0};
};

}  // namespace xsn::inline v0::distributed

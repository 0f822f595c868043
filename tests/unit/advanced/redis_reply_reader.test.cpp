// The Redis link's bounded reply reader (src/advanced/store/redis_connection.hpp): replies a
// broken or hostile server sends are refused past max_reply_bytes before hiredis allocates for
// them, whole replies under the bound parse as before, and a refused partial reply is freed
// (the asan stage checks both: an unbounded 16 GB calloc aborts there, a leak fails it).
#include "store/redis_connection.hpp"

#include "catch.hpp"

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <string_view>

using xsn::advanced::detail::reply_reader;
using result = reply_reader::result;

namespace {

using reply_ptr = std::unique_ptr<redisReply, void (*)(void*)>;

/// Feeds `bytes` and takes out the next reply.
result feed_and_next(reply_reader& r, std::string_view bytes, reply_ptr& out) {
  REQUIRE(r.feed(bytes.data(), bytes.size()));
  redisReply* raw = nullptr;
  const auto found = r.next(raw);
  out.reset(raw);
  return found;
}

}  // namespace

TEST_CASE("redis reply reader: replies under the bound parse as hiredis parses them", "[redis_reader]") {
  reply_reader r(4096);
  reply_ptr reply(nullptr, freeReplyObject);
  REQUIRE(feed_and_next(r, "*3\r\n$5\r\nhello\r\n:42\r\n$-1\r\n", reply) == result::reply);
  REQUIRE(reply->type == REDIS_REPLY_ARRAY);
  REQUIRE(reply->elements == 3);
  CHECK(std::string_view(reply->element[0]->str, reply->element[0]->len) == "hello");
  CHECK(reply->element[1]->integer == 42);
  CHECK(reply->element[2]->type == REDIS_REPLY_NIL);
  redisReply* none = nullptr;
  CHECK(r.next(none) == result::incomplete);
  CHECK(none == nullptr);
}

TEST_CASE("redis reply reader: the bound is per reply, not per connection", "[redis_reader]") {
  reply_reader r(4096);
  const std::string bulk = "$3000\r\n" + std::string(3000, 'x') + "\r\n";
  reply_ptr reply(nullptr, freeReplyObject);
  for (int i = 0; i < 4; ++i) {  // 12 KB in all, each reply about 3 KB
    REQUIRE(feed_and_next(r, bulk, reply) == result::reply);
    CHECK(reply->len == 3000);
  }
  // Two whole replies fed at once parse too: the buffer's whole replies are not counted.
  REQUIRE(r.feed((bulk + bulk).data(), 2 * bulk.size()));
  for (int i = 0; i < 2; ++i) {
    redisReply* raw = nullptr;
    REQUIRE(r.next(raw) == result::reply);
    freeReplyObject(raw);
  }
}

TEST_CASE("redis reply reader: an array header past the bound is refused before any allocation", "[redis_reader]") {
  reply_reader r(4096);
  reply_ptr reply(nullptr, freeReplyObject);
  CHECK(feed_and_next(r, "*2000000000\r\n", reply) == result::error);
  CHECK(reply == nullptr);
  CHECK(r.too_large());
  CHECK(r.error() == "reply larger than max_reply_bytes (4096)");
  // The reader stays failed: the rest of the stream cannot be read.
  redisReply* raw = nullptr;
  CHECK(r.next(raw) == result::error);
}

TEST_CASE("redis reply reader: a bulk string announced past the bound is refused as it arrives", "[redis_reader]") {
  reply_reader r(4096);
  reply_ptr reply(nullptr, freeReplyObject);
  CHECK(feed_and_next(r, "$1000000\r\n", reply) == result::incomplete);
  const std::string chunk(1024, 'y');
  result found = result::incomplete;
  int chunks = 0;
  while (found == result::incomplete && chunks < 100) {
    found = feed_and_next(r, chunk, reply);
    ++chunks;
  }
  CHECK(found == result::error);
  CHECK(r.too_large());
  CHECK(chunks == 4);  // refused once more than 4096 bytes are buffered, not after 1 MB
}

TEST_CASE("redis reply reader: a nested reply that grows past the bound is freed", "[redis_reader]") {
  reply_reader r(4096);
  std::string bytes = "*100\r\n";
  for (int i = 0; i < 100; ++i) bytes += "*1\r\n$40\r\n" + std::string(40, 'z') + "\r\n";
  reply_ptr reply(nullptr, freeReplyObject);
  CHECK(feed_and_next(r, bytes, reply) == result::error);
  CHECK(r.too_large());
}

TEST_CASE("redis reply reader: a reply exactly at the bound is taken", "[redis_reader]") {
  // A bulk string costs 64 bytes of object plus its length.
  reply_reader r(64 + 1000);
  reply_ptr reply(nullptr, freeReplyObject);
  CHECK(feed_and_next(r, "$1000\r\n" + std::string(1000, 'a') + "\r\n", reply) == result::reply);
  reply_reader tight(64 + 999);
  CHECK(feed_and_next(tight, "$1000\r\n" + std::string(1000, 'a') + "\r\n", reply) == result::error);
  CHECK(tight.too_large());
}

TEST_CASE("redis reply reader: a protocol error is told apart from the bound", "[redis_reader]") {
  reply_reader r(4096);
  reply_ptr reply(nullptr, freeReplyObject);
  CHECK(feed_and_next(r, "!not resp\r\n", reply) == result::error);
  CHECK_FALSE(r.too_large());
  CHECK(r.error().rfind("protocol error: ", 0) == 0);
}

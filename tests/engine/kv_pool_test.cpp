#include "engine/kv_pool.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace nativelm {
namespace {

class KvPoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend = make_backend("cpu");
  KvPool pool{*backend, KvPoolShape{2, 8, DType::F32, 4, 3}};
  const std::vector<int32_t> a{1, 2, 3, 4}, b{5, 6, 7, 8};
};

TEST_F(KvPoolTest, AllocateUntilEmptyThenRelease) {
  auto p0 = pool.allocate(), p1 = pool.allocate(), p2 = pool.allocate();
  ASSERT_TRUE(p0 && p1 && p2);
  EXPECT_FALSE(pool.allocate());
  EXPECT_EQ(pool.free_pages(), 0);
  pool.release(*p1);
  EXPECT_EQ(pool.free_pages(), 1);
  EXPECT_EQ(pool.allocate(), p1);
  EXPECT_THROW(pool.release(99), Error);
}

TEST_F(KvPoolTest, PublishedPagesAreSharedAndSurviveTheirOwner) {
  const int32_t page = *pool.allocate();
  const uint64_t h = chain_page_hash(0, a);
  pool.publish(page, h, a);
  EXPECT_EQ(pool.find(h, a), page);  // a second user
  pool.release(page);
  pool.release(page);
  EXPECT_EQ(pool.free_pages(), 3);   // unused cached pages count as free
  EXPECT_EQ(pool.cached_pages(), 1);
  EXPECT_EQ(pool.find(h, a), page);  // still findable after both left
  EXPECT_FALSE(pool.find(h, b));     // same hash, other tokens: a collision is no hit
  EXPECT_FALSE(pool.find(chain_page_hash(0, b), b));
  pool.release(page);
}

TEST_F(KvPoolTest, LeastRecentlyUsedCachedPageIsEvictedWhenNeeded) {
  const int32_t first = *pool.allocate(), second = *pool.allocate();
  const uint64_t ha = chain_page_hash(0, a), hb = chain_page_hash(ha, b);
  pool.publish(first, ha, a);
  pool.publish(second, hb, b);
  pool.release(first);
  pool.release(second);
  auto fresh = pool.allocate();  // the never-used third page comes first
  auto evicted = pool.allocate();
  EXPECT_EQ(evicted, first);     // then the oldest unused cached page
  EXPECT_FALSE(pool.find(ha, a));
  EXPECT_EQ(pool.find(hb, b), second);
  pool.clear_cache();            // in use: stays
  EXPECT_EQ(pool.cached_pages(), 1);
  pool.release(second);
  pool.clear_cache();
  EXPECT_EQ(pool.cached_pages(), 0);
  pool.release(*fresh);
  pool.release(*evicted);
  EXPECT_EQ(pool.free_pages(), 3);
}

TEST(ChainPageHash, DependsOnEverythingBefore) {
  const std::vector<int32_t> a{1, 2}, b{3, 4};
  EXPECT_NE(chain_page_hash(0, a), chain_page_hash(0, b));
  EXPECT_NE(chain_page_hash(chain_page_hash(0, a), b), chain_page_hash(chain_page_hash(0, b), b));
  EXPECT_EQ(chain_page_hash(7, a), chain_page_hash(7, a));
}

}  // namespace
}  // namespace nativelm

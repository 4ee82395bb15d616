// Unit checks of pieces whose exact behaviour is easy to get subtly wrong.
#include <gtest/gtest.h>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace nativelm {
namespace {

// Rust's from_utf8_lossy: one U+FFFD per maximal invalid subpart.
TEST(Utf8, RepairReplacesMaximalSubparts) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8::repair("ok"), "ok");
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98"), r);                 // truncated 4-byte sequence
  EXPECT_EQ(utf8::repair("\xC3(x"), r + "(x");                // bad continuation
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), r + r + r);         // surrogate: each byte
  EXPECT_EQ(utf8::repair("\x80\xBF"), r + r);                 // lone continuations
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), r + r + r + r); // above U+10FFFF
  EXPECT_EQ(utf8::repair("a\xE2\x82\xACz"), "a\xE2\x82\xACz");
}

TEST(Utf8, FindInvalid) {
  EXPECT_EQ(utf8::find_invalid("héllo"), std::string::npos);
  EXPECT_EQ(utf8::find_invalid("h\xC0\xAF"), 1u);  // overlong
  EXPECT_EQ(utf8::find_invalid("ab\xE2\x82"), 2u);
}

TEST(SplitBehavior, MatchesTokenizersSemantics) {
  // "a,b,,c" split on ',' : segments a | , | b | , | , | c
  std::vector<Segment> s = {{0, 1, false}, {1, 2, true}, {2, 3, false}, {3, 4, true}, {4, 5, true}, {5, 6, false}};
  using R = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(apply_split_behavior(s, SplitBehavior::Removed), (R{{0, 1}, {2, 3}, {5, 6}}));
  EXPECT_EQ(apply_split_behavior(s, SplitBehavior::Isolated), (R{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}}));
  EXPECT_EQ(apply_split_behavior(s, SplitBehavior::MergedWithPrevious), (R{{0, 2}, {2, 4}, {4, 5}, {5, 6}}));
  EXPECT_EQ(apply_split_behavior(s, SplitBehavior::MergedWithNext), (R{{0, 1}, {1, 3}, {3, 4}, {4, 6}}));
  EXPECT_EQ(apply_split_behavior(s, SplitBehavior::Contiguous), (R{{0, 1}, {1, 2}, {2, 3}, {3, 5}, {5, 6}}));
}

}  // namespace
}  // namespace nativelm

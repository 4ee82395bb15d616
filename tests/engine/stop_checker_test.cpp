#include "engine/stop_checker.h"

#include <gtest/gtest.h>

namespace nativelm {
namespace {

// Feeds pieces one by one, returns everything emitted.
std::string run(StopChecker& s, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += s.feed(p);
  return out + s.flush();
}

TEST(StopChecker, NoStopsPassesEverything) {
  StopChecker s({});
  EXPECT_EQ(s.feed("hello"), "hello");
  EXPECT_FALSE(s.matched());
}

TEST(StopChecker, StopInsideOnePiece) {
  StopChecker s({"END"});
  EXPECT_EQ(run(s, {"abc END def"}), "abc ");
  EXPECT_EQ(s.matched(), "END");
}

TEST(StopChecker, StopSplitAcrossPiecesIsNeverShown) {
  StopChecker s({"</end>"});
  EXPECT_EQ(s.feed("text </"), "text ");
  EXPECT_EQ(s.feed("en"), "");
  EXPECT_EQ(s.feed("d> more"), "");
  EXPECT_EQ(s.matched(), "</end>");
}

TEST(StopChecker, FalseStartIsReleased) {
  StopChecker s({"STOP"});
  EXPECT_EQ(s.feed("ST"), "");
  EXPECT_EQ(s.feed("AR"), "STAR");
  EXPECT_EQ(run(s, {"T", "ST"}), "TST");
  EXPECT_FALSE(s.matched());
}

TEST(StopChecker, EarliestOfSeveralStopsWins) {
  StopChecker s({"bb", "a"});
  EXPECT_EQ(run(s, {"xxbbya"}), "xx");
  EXPECT_EQ(s.matched(), "bb");
}

TEST(StopChecker, NothingAfterMatch) {
  StopChecker s({"\n"});
  EXPECT_EQ(s.feed("line\nrest"), "line");
  EXPECT_EQ(s.feed("more"), "");
  EXPECT_EQ(s.flush(), "");
}

}  // namespace
}  // namespace nativelm

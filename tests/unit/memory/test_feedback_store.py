"""The feedback store keeps every press; what it gives for export is each rater's last word on an answer."""

from __future__ import annotations

from pathlib import Path

from zhiwen.memory.feedback import Feedback, FeedbackStore


def _rating(rating: str, at: float, thread: str = "t1", answer: str = "The fee is 300 yuan.") -> Feedback:
    return Feedback(thread_id=thread, rating=rating, question="What is the fee?", answer=answer, created=at)  # type: ignore[arg-type]


def test_a_re_rated_answer_is_exported_once_with_its_last_rating(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    try:
        for i, rating in enumerate(("up", "up", "up", "down")):  # three 👍, then the rater changed their mind
            store.add(_rating(rating, 100.0 + i), owner="ou_user")
        store.add(_rating("up", 110.0), owner="ou_other")  # another rater's word stands on its own
        store.add(_rating("up", 120.0, thread="t2", answer="Another answer."), owner="ou_user")
        everything = store.rated()
        assert [(f.thread_id, f.rating) for f in everything] == [("t1", "down"), ("t1", "up"), ("t2", "up")]
        assert [f.thread_id for f in store.rated("down")] == ["t1"]
        assert [(f.thread_id, f.created) for f in store.rated("up")] == [("t1", 110.0), ("t2", 120.0)]
    finally:
        store.close()

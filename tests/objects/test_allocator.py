"""ExtentAllocator: best fit, merging of freed neighbours, refusal of bad frees."""

import pytest

from actorcore.objects.allocator import PAGE, ExtentAllocator

pytestmark = pytest.mark.timeout(30)


def test_allocates_whole_pages_from_the_start_and_refuses_when_full():
    arena = ExtentAllocator(10 * PAGE)
    assert arena.allocate(1) == 0
    assert arena.allocate(PAGE + 1) == PAGE  # two pages
    assert arena.free_bytes == 7 * PAGE
    assert arena.allocate(8 * PAGE) is None
    assert arena.allocate(7 * PAGE) == 3 * PAGE
    assert arena.free_bytes == 0 and arena.largest_free() == 0


def test_best_fit_reuses_the_freed_extent_of_the_same_size():
    arena = ExtentAllocator(100 * PAGE)
    small = arena.allocate(2 * PAGE)
    big = arena.allocate(20 * PAGE)
    arena.allocate(PAGE)  # keeps big's range from merging with the free tail
    arena.free(big, 20 * PAGE)
    assert arena.allocate(20 * PAGE) == big  # not the larger free tail
    arena.free(small, 2 * PAGE)
    assert arena.allocate(PAGE) == small


def test_freed_neighbours_merge_into_one_range():
    arena = ExtentAllocator(30 * PAGE)
    a, b, c = (arena.allocate(10 * PAGE) for _ in range(3))
    arena.free(a, 10 * PAGE)
    arena.free(c, 10 * PAGE)
    assert arena.free_ranges() == [(0, 10 * PAGE), (20 * PAGE, 10 * PAGE)]
    arena.free(b, 10 * PAGE)
    assert arena.free_ranges() == [(0, 30 * PAGE)]
    assert arena.allocate(30 * PAGE) == 0


@pytest.mark.parametrize(("start", "size", "message"), [
    (0, PAGE, "already free"),
    (PAGE + 1, PAGE, "not an extent"),
    (9 * PAGE, 2 * PAGE, "not an extent"),
])
def test_bad_frees_are_refused_by_name(start, size, message):
    arena = ExtentAllocator(10 * PAGE)
    arena.allocate(PAGE)
    arena.free(0, PAGE)
    with pytest.raises(ValueError, match=message):
        arena.free(start, size)


def test_capacity_below_a_page_and_empty_requests_are_refused():
    with pytest.raises(ValueError, match="at least one page"):
        ExtentAllocator(100)
    with pytest.raises(ValueError, match="cannot allocate 0 bytes"):
        ExtentAllocator(PAGE).allocate(0)

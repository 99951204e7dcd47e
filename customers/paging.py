"""Pages of a long list without counting all of it.

Django's `Paginator` runs COUNT(*) over the whole list on every page: at 193,000 customers
that costs more than the page itself. Here a page is read with one row more than it shows
(so "Next" is known without a count), and the count stops at a cap: the list says
"1,000+" beyond it. Pages past the cap are still reached with Next. A page number that is
not a number, or lies past the end, gets an explanation instead of an error.
"""

import math
from dataclasses import dataclass, field

PER_PAGE = 50
COUNT_CAP = 1000
# Past this, OFFSET would overflow PostgreSQL's bigint; no list is that long anyway.
MAX_PAGE = 10**12


@dataclass
class CappedPage:
    rows: list
    number: int
    per_page: int
    count: int  # exact up to `cap`; `cap + 1` means "more than cap"
    cap: int
    has_next: bool
    problem: str = ""  # why the requested page is not the one shown, for the user
    last_page: int | None = field(default=None)  # known when the count is exact

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    @property
    def count_is_exact(self):
        return self.count <= self.cap

    @property
    def count_label(self):
        return f"{self.count:,}" if self.count_is_exact else f"{self.cap:,}+"

    @property
    def range_label(self):
        return f"{self.start_index:,}–{self.end_index:,}"

    @property
    def has_previous(self):
        return self.number > 1

    @property
    def has_other_pages(self):
        return self.has_previous or self.has_next

    @property
    def previous_page_number(self):
        return self.number - 1

    @property
    def next_page_number(self):
        return self.number + 1

    @property
    def start_index(self):
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def end_index(self):
        return (self.number - 1) * self.per_page + len(self.rows)


def parse_page_number(value):
    """(page number, problem): page 1 with an explanation for anything but 1, 2, 3 ..."""
    if value in (None, ""):
        return 1, ""
    text = str(value).strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PAGE:
        return int(text), ""
    shown = text if len(text) <= 20 else text[:20] + "…"
    return 1, f"“{shown}” is not a page number; showing the first page."


def capped_page(rows, count_rows, requested, *, per_page=PER_PAGE, cap=COUNT_CAP):
    """Page `requested` (a string from the query) of the queryset `rows`, already ordered.

    `count_rows` is the same selection without the costly columns (annotations, joins):
    it is counted up to `cap` + 1 rows. Always two queries, whatever the list's size."""
    return capped_page_of(
        lambda limit: count_rows.order_by().values("pk")[:limit].count(),
        lambda offset, limit: list(rows[offset : offset + limit]),
        requested,
        per_page=per_page,
        cap=cap,
    )


def capped_page_of(count, read, requested, *, per_page=PER_PAGE, cap=COUNT_CAP):
    """`capped_page` for any source: `count(limit)` counts its rows up to `limit`, and
    `read(offset, limit)` returns that slice of them in order (the name search reads
    its pages from its own table: `customers.selectors.NameSearch`)."""
    number, problem = parse_page_number(requested)
    count = count(cap + 1)
    last_page = max(1, math.ceil(count / per_page)) if count <= cap else None
    if last_page is not None and number > last_page:
        problem = (
            f"There is no page {number:,}; the list has {last_page:,} page{'s' * (last_page > 1)}."
        )
    offset = (number - 1) * per_page
    found = read(offset, per_page + 1)
    if not found and number > 1 and not problem:
        problem = f"There is no page {number:,}; the list ends before it."
    return CappedPage(
        rows=found[:per_page],
        number=number,
        per_page=per_page,
        count=count,
        cap=cap,
        has_next=len(found) > per_page,
        problem=problem,
        last_page=last_page,
    )

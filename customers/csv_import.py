"""CSV import of customers and their contact persons (the common way in from an ERP).

Three steps, each a plain function the views (and tests) call:

1. `read_csv(data)` turns the uploaded bytes into rows of stripped values: it decodes
   (UTF-8 with or without BOM, else cp1252, else latin-1), finds the delimiter (`,` `;`
   or tab) from the header row and checks the columns. File-level problems are collected,
   never raised.
2. `plan_import(rows, known)` decides, row by row, what would happen (create, update, add
   contact, ...) and what is wrong, given `known`: a snapshot of the entity's customers
   with the numbers in the file (`load_known`). It touches no database.
3. `run_import(rows, ...)` plans again against the database inside the caller's
   transaction, refuses when anything differs from the preview the user confirmed, then
   writes. It is all or nothing: any error rolls the whole import back.

One row is one customer with at most one contact person; several rows with the same
customer number add several contacts to that customer. An existing number updates the
customer's fields that the file fills in; a new number creates the customer.
"""

import csv
import io
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.models import ContactPerson, Customer
from customers.selectors import customer_scope
from customers.text import lf
from security.phones import normalize_phone

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
# The validated rows are kept in the session between preview and confirmation; a file
# whose rows take more than this (as JSON) is refused rather than stored.
MAX_SESSION_CHARS = 3_000_000
DB_CHUNK = 500

COLUMNS = (
    "customer_number",
    "name",
    "organisation_number",
    "email",
    "phone",
    "address",
    "contact_name",
    "contact_title",
    "contact_email",
    "contact_phone",
)
# File column -> Customer field (customer_number is the key, handled apart).
CUSTOMER_COLUMNS = {
    "name": "name",
    "organisation_number": "organisation_number",
    "email": "email",
    "phone": "phone",
    "address": "address",
}
# File column -> ContactPerson field.
CONTACT_COLUMNS = {
    "contact_name": "name",
    "contact_title": "title",
    "contact_email": "email",
    "contact_phone": "phone",
}
LABELS = {
    "customer_number": "Customer number",
    "name": "Name",
    "organisation_number": "Organisation number",
    "email": "Email",
    "phone": "Phone",
    "address": "Address",
    "contact_name": "Contact name",
    "contact_title": "Contact title",
    "contact_email": "Contact email",
    "contact_phone": "Contact phone",
}
DELIMITERS = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab"}

# Row actions (stored as codes: the preview's plan is compared with the confirm-time plan).
CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"
ADD_CONTACT = "add_contact"
UPDATE_CONTACT = "update_contact"
CONTACT_UNCHANGED = "contact_unchanged"
SAME_CUSTOMER = "same_customer"


def _max_length(model, name):
    return model._meta.get_field(name).max_length


MAX_LENGTHS = {
    "customer_number": _max_length(Customer, "number"),
    **{col: _max_length(Customer, f) for col, f in CUSTOMER_COLUMNS.items()},
    **{col: _max_length(ContactPerson, f) for col, f in CONTACT_COLUMNS.items()},
}


def _short(value, limit=60):
    return value if len(value) <= limit else value[: limit - 1] + "…"


# -- Step 1: reading the file ----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    line: int  # the line in the file where the row starts (the header is line 1 or later)
    values: dict  # every name in COLUMNS -> stripped text ("" when absent)
    problems: tuple = ()  # problems found while reading (e.g. too many values)

    def to_list(self):
        return [self.line, *(self.values[c] for c in COLUMNS)]

    @classmethod
    def from_list(cls, item):
        line, *values = item
        if len(values) != len(COLUMNS):
            raise ValueError("stored row has the wrong shape")
        return cls(int(line), dict(zip(COLUMNS, (str(v) for v in values), strict=True)))


@dataclass
class CsvFile:
    encoding: str = ""
    delimiter: str = ""
    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def delimiter_label(self):
        return DELIMITERS.get(self.delimiter, "")


def decode(data):
    """(text, label of the encoding used). UTF-8 first; cp1252, then latin-1 only if not."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "UTF-8 (with BOM)"
        except UnicodeDecodeError:
            data = data[3:]
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252 (cp1252)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1 (ISO-8859-1)"


def sniff_delimiter(header_line):
    """The delimiter of a header line: the most frequent of `;` `,` and tab outside quotes
    (`,` for a single-column file)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: (counts[d], d == ";"))
    return best if counts[best] else ","


def _not_text(data):
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return (
            "This is an Excel workbook (or another binary file), not a CSV file. In Excel, "
            "choose Save As and the type “CSV UTF-8”, then upload that file."
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "The file is saved as UTF-16 (Excel's “Unicode text”). Save it as “CSV UTF-8” "
            "and upload it again."
        )
    return None


def read_csv(data):
    """Read uploaded bytes into a `CsvFile`; every problem is collected in `.problems`."""
    result = CsvFile()
    if len(data) > MAX_BYTES:
        result.problems.append(size_message(len(data)))
        return result
    if not data.strip():
        result.problems.append("The file is empty.")
        return result
    binary = _not_text(data)
    if binary:
        result.problems.append(binary)
        return result
    text, result.encoding = decode(data)
    if text.startswith("\ufeff"):
        text = text[1:]
    elif text.startswith("ï»¿"):  # a UTF-8 BOM read as cp1252 (the rest was not UTF-8)
        text = text[3:]
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        result.problems.append(
            f"The file contains a NUL character (line {line}). That usually means it is not "
            "a plain CSV file; save it as “CSV UTF-8” and upload it again."
        )
        return result
    if not text.strip():
        result.problems.append("The file is empty.")
        return result
    first_line = next(line for line in text.splitlines() if line.strip())
    result.delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=result.delimiter)
    header = None
    positions = {}  # column name -> index
    unnamed_used = set()  # lines with a value under a column without a name
    try:
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if header is None:
                header = cells
                problems = _check_header(header, result.delimiter)
                if problems:
                    result.problems.extend(problems)
                    return result
                positions = {name.lower(): i for i, name in enumerate(header) if name}
                result.columns = [name.lower() for name in header if name]
                continue
            result.rows.append(_row(line, cells, header, positions, unnamed_used))
    except csv.Error as error:
        result.problems.append(
            f"The file cannot be read as CSV near line {reader.line_num}: {error}. Check the "
            "quotes around values."
        )
        return result
    if header is None:
        result.problems.append("The file is empty.")
    elif not result.rows:
        result.problems.append("The file has a header row but no data rows.")
    elif len(result.rows) > MAX_ROWS:
        result.problems.append(
            f"The file has {len(result.rows):,} data rows; at most {MAX_ROWS:,} can be imported "
            "at once. Split it into smaller files."
        )
    if unnamed_used:
        result.problems.append(
            f"Line {min(unnamed_used)} has a value in a column without a name in the header "
            "row. Name the column or remove the values."
        )
    if result.problems:
        result.rows = []
    return result


def _check_header(header, delimiter):
    names = [name.lower() for name in header]
    known = ", ".join(COLUMNS)
    if not any(name in COLUMNS for name in names):
        example = delimiter.join(("customer_number", "name", "contact_name"))
        return [
            "The first row must be a header row naming the columns, for example "
            f"“{example}”. Known columns: {known}."
        ]
    problems = []
    unknown = [name for name, raw in zip(names, header, strict=True) if raw and name not in COLUMNS]
    if unknown:
        listed = ", ".join(f"“{_short(name, 40)}”" for name in unknown)
        word = "column" if len(unknown) == 1 else "columns"
        problems.append(f"Unknown {word}: {listed}. Known columns: {known}.")
    doubled = sorted({name for name in names if name and names.count(name) > 1})
    for name in doubled:
        problems.append(f"The column {name} appears more than once in the header row.")
    if "customer_number" not in names:
        problems.append("The header row has no customer_number column; it is required.")
    return problems


def _row(line, cells, header, positions, unnamed_used):
    problems = []
    if len(cells) > len(header) and any(cells[len(header) :]):
        problems.append(
            f"This row has {len(cells)} values but the header has {len(header)} columns; a "
            "value may contain the delimiter without quotes around it."
        )
    for index, name in enumerate(header):
        if not name and index < len(cells) and cells[index]:
            unnamed_used.add(line)
    values = {}
    for column in COLUMNS:
        index = positions.get(column)
        values[column] = cells[index] if index is not None and index < len(cells) else ""
    return Row(line, values, tuple(problems))


def size_message(size):
    return (
        f"The file is {size / (1024 * 1024):.1f} MB; the limit is "
        f"{MAX_BYTES // (1024 * 1024)} MB. Split it into smaller files."
    )


# -- Step 2: the plan ------------------------------------------------------------------


@dataclass
class KnownCustomer:
    """A customer of the entity whose number is in the file, as the plan needs it."""

    pk: int
    values: dict  # Customer field -> current value (CUSTOMER_COLUMNS' fields)
    visible: bool = True
    anonymised: bool = False
    # Contacts by their name folded (case and spaces): a list of {"pk", field: value}.
    contacts: dict = field(default_factory=dict)


def contact_key(name):
    return " ".join(name.split()).casefold()


@dataclass
class RowPlan:
    line: int
    number: str
    name: str
    contact_name: str
    actions: list = field(default_factory=list)  # (code, label)
    problems: list = field(default_factory=list)

    @property
    def codes(self):
        return [code for code, _ in self.actions]

    @property
    def labels(self):
        return [label for _, label in self.actions]


@dataclass
class CustomerOp:
    number: str
    pk: int | None  # None: create
    values: dict  # the customer's values from the file (merged over its rows)
    changes: dict  # for an existing customer: the fields that change


@dataclass
class ContactOp:
    number: str
    pk: int | None  # None: add
    values: dict
    changes: dict


@dataclass
class Plan:
    rows: list = field(default_factory=list)
    customers: list = field(default_factory=list)  # CustomerOp
    contacts: list = field(default_factory=list)  # ContactOp

    @property
    def rows_with_problems(self):
        return [row for row in self.rows if row.problems]

    @property
    def ok(self):
        return bool(self.rows) and not self.rows_with_problems

    @property
    def counts(self):
        return {
            "customers_created": sum(1 for op in self.customers if op.pk is None),
            "customers_updated": sum(1 for op in self.customers if op.pk and op.changes),
            "contacts_added": sum(1 for op in self.contacts if op.pk is None),
            "contacts_updated": sum(1 for op in self.contacts if op.pk and op.changes),
        }

    def signature(self):
        """What the user saw and confirmed: each row's actions (JSON-friendly)."""
        return [[row.line, row.codes] for row in self.rows]


def _clean(column, raw):
    """(value to store, problem or None) for one non-empty cell."""
    label = LABELS[column]
    value = lf(raw)  # a quoted cell's newlines, stored as LF like every text
    if column == "organisation_number":
        compact = "".join(raw.split())
        if compact.isascii() and compact.isdigit():
            if len(compact) != 9:
                return None, (
                    f"Organisation number “{_short(raw)}” must have 9 digits "
                    f"(it has {len(compact)})."
                )
            value = compact
    elif column in ("email", "contact_email"):
        try:
            validate_email(raw)
        except ValidationError:
            return None, f"{label} “{_short(raw)}” is not a valid email address."
    elif column in ("phone", "contact_phone"):
        try:
            value = normalize_phone(raw, mobile_only=False)
        except ValidationError as error:
            return None, f"{label} “{_short(raw)}”: {error.messages[0]}"
    limit = MAX_LENGTHS.get(column)
    if limit and len(value) > limit:
        return None, f"{label} is too long: {len(value)} characters, at most {limit}."
    return value, None


def _differs(stored, value):
    """Whether a file's (cleaned) `value` changes a `stored` one: not when they differ only
    in CRLF against LF newlines (the stored text is then kept as it is)."""
    return lf(stored or "") != value


def _fields_list(changes, mapping):
    names = {v: k for k, v in mapping.items()}
    return ", ".join(LABELS[names[f]].lower() for f in changes)


def plan_import(rows, known):
    """Decide every row's actions and problems. `known`: number -> KnownCustomer."""
    plan = Plan()
    groups = {}  # number -> _Group, in the order the numbers first appear
    contact_rows = []  # (RowPlan, group, contact values)
    for row in rows:
        values = row.values
        number = values["customer_number"]
        item = RowPlan(row.line, number, values["name"], values["contact_name"])
        item.problems.extend(row.problems)
        plan.rows.append(item)
        customer, contact = {}, {}
        for column, target in (*CUSTOMER_COLUMNS.items(), *CONTACT_COLUMNS.items()):
            if not values[column]:
                continue
            value, problem = _clean(column, values[column])
            if problem:
                item.problems.append(problem)
            elif column in CUSTOMER_COLUMNS:
                customer[target] = value
            else:
                contact[target] = value
        if not values["contact_name"] and any(values[c] for c in CONTACT_COLUMNS):
            item.problems.append(
                "A contact title, email or phone is given but no contact_name; a contact "
                "person needs a name."
            )
        if not number:
            item.problems.append("Customer number is missing.")
            continue
        limit = MAX_LENGTHS["customer_number"]
        if len(number) > limit:
            item.problems.append(
                f"Customer number is too long: {len(number)} characters, at most {limit}."
            )
            continue
        existing = known.get(number)
        if existing is not None and not existing.visible:
            item.problems.append(
                f"Customer number {number} is already used by a customer you cannot see. "
                "Ask an administrator to import this customer."
            )
            continue
        if existing is not None and existing.anonymised:
            item.problems.append(
                f"Customer {number} has been anonymised; the import does not fill in its "
                "data again."
            )
            continue
        if existing is not None and not item.name:
            item.name = existing.values["name"]
        group = groups.get(number)
        if group is None:
            group = groups[number] = _Group(item, existing)
        group.name_given = group.name_given or bool(values["name"])
        for target, value in customer.items():
            previous = group.values.get(target)
            if previous is None:
                group.values[target] = (value, item.line)
            elif previous[0] != value:
                label = _fields_list([target], CUSTOMER_COLUMNS).capitalize()
                item.problems.append(
                    f"{label} “{_short(value)}” differs from line {previous[1]} "
                    f"(“{_short(previous[0])}”) for the same customer number {number}."
                )
        if "name" in contact:
            key = contact_key(contact["name"])
            if key in group.contacts:
                item.problems.append(
                    f"Contact {contact['name']} is already on line {group.contacts[key]} "
                    f"for customer {number} (a duplicate row)."
                )
            else:
                group.contacts[key] = item.line
                contact_rows.append((item, group, contact))
        if group.first is not item:
            group.later.append(item)
    # Customer actions go on each number's first row; they depend on all its rows.
    for number, group in groups.items():
        first, existing = group.first, group.existing
        values = {target: value for target, (value, _) in group.values.items()}
        if existing is None:
            if not group.name_given:
                first.problems.append("Name is missing; a new customer needs a name.")
            first.actions.append((CREATE, "Create customer"))
            plan.customers.append(CustomerOp(number, None, values, values))
            continue
        changes = {f: v for f, v in values.items() if _differs(existing.values.get(f), v)}
        if changes:
            label = f"Update customer ({_fields_list(changes, CUSTOMER_COLUMNS)})"
            first.actions.append((UPDATE, label))
        else:
            first.actions.append((UNCHANGED, "Customer unchanged"))
        plan.customers.append(CustomerOp(number, existing.pk, values, changes))
    for item, group, contact in contact_rows:
        name = contact["name"]
        existing = group.existing
        matches = existing.contacts.get(contact_key(name), []) if existing else []
        if len(matches) > 1:
            item.problems.append(
                f"Customer {item.number} already has {len(matches)} contacts named {name}; "
                "the import cannot tell which one to update. Change them on the customer "
                "card and remove this row."
            )
        elif matches:
            current = matches[0]
            changes = {f: v for f, v in contact.items() if _differs(current.get(f), v)}
            if changes:
                fields = _fields_list(changes, CONTACT_COLUMNS).replace("contact ", "")
                item.actions.append((UPDATE_CONTACT, f"Update contact {name} ({fields})"))
            else:
                item.actions.append((CONTACT_UNCHANGED, f"Contact {name} unchanged"))
            plan.contacts.append(ContactOp(item.number, current["pk"], contact, changes))
        else:
            item.actions.append((ADD_CONTACT, f"Add contact {name}"))
            plan.contacts.append(ContactOp(item.number, None, contact, contact))
    for group in groups.values():
        for item in group.later:
            if not item.actions:
                item.actions.append((SAME_CUSTOMER, f"Same customer as line {group.first.line}"))
    return plan


@dataclass
class _Group:
    """The rows of one customer number while planning."""

    first: RowPlan
    existing: KnownCustomer | None
    name_given: bool = False
    values: dict = field(default_factory=dict)  # field -> (value, line it came from)
    contacts: dict = field(default_factory=dict)  # contact key -> line
    later: list = field(default_factory=list)


# -- The database side -----------------------------------------------------------------


def _chunks(items, size=DB_CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_known(entity, numbers, *, scope=None, lock=False):
    """Snapshot of `entity`'s customers with these numbers (and their contacts).

    `scope` (customers.selectors.Scope) marks which of them the user may see; `lock` takes
    row locks (inside a transaction) so they cannot change before the import writes.
    """
    fields = list(CUSTOMER_COLUMNS.values())
    known = {}
    for chunk in _chunks(sorted(set(numbers))):
        customers = Customer.objects.filter(entity=entity, number__in=chunk)
        if lock:
            customers = customers.select_for_update()
        for row in customers.values("pk", "number", "anonymised_at", *fields):
            known[row["number"]] = KnownCustomer(
                pk=row["pk"],
                values={f: row[f] for f in fields},
                anonymised=row["anonymised_at"] is not None,
            )
        if scope is not None and known:
            visible = set(
                customer_scope(
                    Customer.objects.filter(entity=entity, number__in=chunk), scope
                ).values_list("pk", flat=True)
            )
            for number in chunk:
                if number in known:
                    known[number].visible = known[number].pk in visible
    by_pk = {customer.pk: customer for customer in known.values()}
    contact_fields = list(CONTACT_COLUMNS.values())
    for chunk in _chunks(by_pk):
        contacts = ContactPerson.objects.filter(entity=entity, customer_id__in=chunk)
        if lock:
            contacts = contacts.select_for_update()
        for row in contacts.values("pk", "customer_id", *contact_fields).order_by("pk"):
            key = contact_key(row["name"])
            by_pk[row["customer_id"]].contacts.setdefault(key, []).append(row)
    return known


def preview(rows, entity, *, scope=None):
    """The plan for rows read from a file, against the database as it is now."""
    numbers = {row.values["customer_number"] for row in rows if row.values["customer_number"]}
    return plan_import(rows, load_known(entity, numbers, scope=scope))


class ImportRefused(Exception):
    """The import cannot run as previewed; the message says why, for the user."""


def run_import(rows, entity, *, expected, scope=None):
    """Plan again (with row locks) and write. Call inside `transaction.atomic()`.

    `expected` is the signature of the plan the user confirmed; if the database changed so
    that any row would now do something else, or a row now has a problem, nothing is
    written and ImportRefused says why. Returns the plan's counts.
    """
    numbers = {row.values["customer_number"] for row in rows}
    plan = plan_import(rows, load_known(entity, numbers, scope=scope, lock=True))
    if plan.rows_with_problems:
        first = plan.rows_with_problems[0]
        raise ImportRefused(
            "The customers changed after the preview and the file no longer imports "
            f"cleanly (line {first.line}: {first.problems[0]}) Nothing was imported; "
            "upload the file again."
        )
    if plan.signature() != expected:
        before = {line: codes for line, codes in expected}
        changed = [
            row.number for row in plan.rows if before.get(row.line) != row.codes and row.number
        ]
        which = ", ".join(dict.fromkeys(changed[:5])) or "some customers"
        raise ImportRefused(
            f"The customers changed after the preview (customer number {which} was created, "
            "changed or removed meanwhile). Nothing was imported; upload the file again to "
            "see what it would do now."
        )
    write(plan, entity)
    return plan.counts


def write(plan, entity):
    """Carry out a plan's creates and updates. Only under `run_import`'s transaction."""
    customer_pks = {}
    for op in plan.customers:
        if op.pk is None:
            customer = Customer(entity=entity, number=op.number, **op.values)
            customer.save()
            customer_pks[op.number] = customer.pk
            continue
        customer_pks[op.number] = op.pk
        if op.changes:
            customer = Customer(pk=op.pk, entity=entity, number=op.number, **op.changes)
            customer.save(update_fields=list(op.changes))
    for op in plan.contacts:
        if op.pk is None:
            ContactPerson(entity=entity, customer_id=customer_pks[op.number], **op.values).save()
        elif op.changes:
            contact = ContactPerson(
                pk=op.pk, entity=entity, customer_id=customer_pks[op.number], **op.changes
            )
            contact.save(update_fields=list(op.changes))


def success_message(counts):
    contacts = counts["contacts_added"] + counts["contacts_updated"]
    return (
        f"Imported: {counts['customers_created']} new customers, "
        f"{counts['customers_updated']} updated, {contacts} contacts."
    )

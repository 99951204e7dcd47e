"""CSV import of customers and contacts: reading, the preview, the all-or-nothing confirm."""

import pytest
from django.utils.html import escape

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from customers import csv_import, import_views
from customers.csv_import import KnownCustomer, plan_import, read_csv
from customers.models import ContactPerson, Customer
from security.models import AuditEvent, SecurityPolicy
from security.phones import MESSAGES
from tests.conftest import work_in
from tests.helpers import IMPORT_CONFIRM_URL, IMPORT_URL, confirm_import, csv_bytes, upload_csv

NOTHING = "Fix the file and upload it again; nothing was imported."


def customers_of(entity):
    with system_code():
        return {c.number: c for c in Customer.objects.filter(entity=entity)}


def contacts_of(entity):
    with system_code():
        return sorted(
            ContactPerson.objects.filter(entity=entity).values_list(
                "customer__number", "name", "title", "email", "phone"
            )
        )


def make_customer(entity, number, name, **fields):
    with system_code():
        return Customer.objects.create(entity=entity, number=number, name=name, **fields)


@pytest.fixture
def editor(world, client):
    return work_in(client, world.users[Role.CREDIT_MANAGER], world.a)


# -- Through the views ------------------------------------------------------------------


def test_semicolons_and_a_bom_create_customers_and_contacts(world, editor):
    data = csv_bytes(
        "1001;Fjellvik Transport AS;923 456 789;post@fjellvik.no;22 33 44 55;"
        '"Storgata 1\n0150 Oslo";Kari Nordmann;CFO;kari@fjellvik.no;912 34 567',
        "1001;;;;;;Ola Hansen;;;",
        "1002;Havbris Fisk AS;;;;;;;;",
        bom=True,
    )
    page = upload_csv(editor, data)
    body = page.content.decode()
    assert page.status_code == 200
    assert "UTF-8 (with BOM)" in body and "semicolon (;)" in body
    assert "Create customer" in body and "Add contact Ola Hansen" in body
    assert NOTHING not in body and 'name="token"' in body
    assert customers_of(world.a) == {}  # nothing before the confirmation

    done = confirm_import(editor, page)
    assert "Imported: 2 new customers, 0 updated, 2 contacts." in done.content.decode()
    saved = customers_of(world.a)
    assert set(saved) == {"1001", "1002"}
    fjellvik = saved["1001"]
    assert fjellvik.name == "Fjellvik Transport AS"
    assert fjellvik.organisation_number == "923456789"
    assert fjellvik.phone == "+4722334455"
    assert fjellvik.address == "Storgata 1\n0150 Oslo"
    assert contacts_of(world.a) == [
        ("1001", "Kari Nordmann", "CFO", "kari@fjellvik.no", "+4791234567"),
        ("1001", "Ola Hansen", "", "", ""),
    ]


def test_an_existing_number_updates_only_the_fields_the_file_fills_in(world, editor):
    make_customer(world.a, "1001", "Fjellvik AS", email="old@fjellvik.no", address="Storgata 1")
    data = csv_bytes("1001;;;new@fjellvik.no;;;Kari Nordmann;;;")
    page = upload_csv(editor, data)
    assert "Update customer (email)" in page.content.decode()

    done = confirm_import(editor, page)
    assert "Imported: 0 new customers, 1 updated, 1 contacts." in done.content.decode()
    customer = customers_of(world.a)["1001"]
    assert (customer.name, customer.email, customer.address) == (
        "Fjellvik AS",
        "new@fjellvik.no",
        "Storgata 1",
    )
    assert [c[1] for c in contacts_of(world.a)] == ["Kari Nordmann"]


def test_reimporting_the_same_file_changes_nothing(world, editor):
    data = csv_bytes("1001;Fjellvik AS;;;;;Kari Nordmann;CFO;;")
    confirm_import(editor, upload_csv(editor, data))
    page = upload_csv(editor, data)
    body = page.content.decode()
    assert "Customer unchanged" in body and "Contact Kari Nordmann unchanged" in body
    done = confirm_import(editor, page)
    assert "Imported: 0 new customers, 0 updated, 0 contacts." in done.content.decode()
    assert len(contacts_of(world.a)) == 1


PROBLEMS = [
    ("missing number", [";Fjellvik AS;;;;;;;;"], "Customer number is missing."),
    (
        "missing name",
        ["1001;;;post@fjellvik.no;;;;;;"],
        "Name is missing; a new customer needs a name.",
    ),
    (
        "invalid email",
        ["1001;Fjellvik AS;;post(at)fjellvik.no;;;;;;"],
        "Email “post(at)fjellvik.no” is not a valid email address.",
    ),
    (
        "invalid contact email",
        ["1001;Fjellvik AS;;;;;Kari;;kari@;"],
        "Contact email “kari@” is not a valid email address.",
    ),
    (
        "invalid phone",
        ["1001;Fjellvik AS;;;123;;;;;"],
        f"Phone “123”: {MESSAGES['too_short']}",
    ),
    (
        "invalid contact phone",
        ["1001;Fjellvik AS;;;;;Kari;;;hello"],
        f"Contact phone “hello”: {MESSAGES['unparseable']}",
    ),
    (
        "organisation number",
        ["1001;Fjellvik AS;923 456 78;;;;;;;"],
        "Organisation number “923 456 78” must have 9 digits (it has 8).",
    ),
    (
        "number too long",
        ["1" * 41 + ";Fjellvik AS;;;;;;;;"],
        "Customer number is too long: 41 characters, at most 40.",
    ),
    (
        "name too long",
        ["1001;" + "F" * 201 + ";;;;;;;;"],
        "Name is too long: 201 characters, at most 200.",
    ),
    (
        "conflicting rows",
        ["1001;Fjellvik AS;;;;;Kari;;;", "1001;Fjellvik Transport AS;;;;;Ola;;;"],
        "Name “Fjellvik Transport AS” differs from line 3 (“Fjellvik AS”) for the same "
        "customer number 1001.",
    ),
    (
        "duplicate contact",
        ["1001;Fjellvik AS;;;;;Kari Nordmann;;;", "1001;;;;;;kari  nordmann;;;"],
        "Contact kari  nordmann is already on line 3 for customer 1001 (a duplicate row).",
    ),
    (
        "contact without a name",
        ["1001;Fjellvik AS;;;;;;CFO;;"],
        "A contact title, email or phone is given but no contact_name",
    ),
    (
        "too many values",
        ["1001;Fjellvik AS;;;;Storgata 1; 0150 Oslo;Kari;;;912 34 567"],
        "This row has 11 values but the header has 10 columns",
    ),
]


@pytest.mark.parametrize("lines,message", [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_each_row_problem_is_shown_and_nothing_is_offered_or_imported(
    world, editor, lines, message
):
    # A valid row first: one bad row blocks the whole file.
    page = upload_csv(editor, csv_bytes("2000;Havbris Fisk AS;;;;;;;;", *lines))
    body = page.content.decode()
    assert escape(message) in body
    assert NOTHING in body
    assert 'name="token"' not in body and page.context["token"] is None
    assert import_views.SESSION_KEY not in editor.session
    assert editor.post(IMPORT_CONFIRM_URL, {"token": "x"}).status_code == 302
    assert customers_of(world.a) == {}


FILE_PROBLEMS = [
    ("empty", b"", "The file is empty."),
    ("blank", b" \r\n\r\n", "The file is empty."),
    ("header only", csv_bytes(), "The file has a header row but no data rows."),
    (
        "no header",
        b"1001;Fjellvik AS\n1002;Havbris AS\n",
        "The first row must be a header row naming the columns",
    ),
    (
        "no customer_number column",
        b"name;email\nFjellvik AS;post@fjellvik.no\n",
        "The header row has no customer_number column; it is required.",
    ),
    (
        "NUL",
        csv_bytes("1001;Fjell\x00vik AS;;;;;;;;"),
        "The file contains a NUL character (line 2)",
    ),
    ("xlsx", b"PK\x03\x04rest-of-a-zip", "This is an Excel workbook"),
    (
        "too many rows",
        csv_bytes(*(f"{n};Customer {n};;;;;;;;" for n in range(5001))),
        "The file has 5,001 data rows; at most 5,000 can be imported at once.",
    ),
]


@pytest.mark.parametrize(
    "data,message", [p[1:] for p in FILE_PROBLEMS], ids=[p[0] for p in FILE_PROBLEMS]
)
def test_file_problems_are_shown_and_nothing_is_imported(world, editor, data, message):
    page = upload_csv(editor, data)
    body = page.content.decode()
    assert page.status_code == 200
    assert message in body
    assert NOTHING in body and 'name="token"' not in body
    assert customers_of(world.a) == {}


def test_unknown_columns_are_listed_with_the_known_ones(world, editor):
    data = b"Customer_Number, Navn ,email,Telefon\n1001,Fjellvik AS,post@fjellvik.no,22334455\n"
    body = upload_csv(editor, data).content.decode()
    assert "Unknown columns: “navn”, “telefon”." in body
    assert "Known columns: customer_number, name, organisation_number, email, phone" in body
    assert NOTHING in body


def test_a_file_over_2_mb_is_refused(world, editor):
    padding = "x" * 200
    lines = [f"{n};Customer {n};;;;{padding};;;;" for n in range(11000)]
    data = csv_bytes(*lines)
    assert len(data) > 2 * 1024 * 1024
    page = upload_csv(editor, data)
    body = page.content.decode()
    assert "the limit is 2 MB" in body
    assert page.context["form"].errors
    assert customers_of(world.a) == {}


def test_a_cp1252_file_decodes_and_says_so(world, editor):
    data = csv_bytes("1001;Ålesund Fisk AS;;;;Strandgata 5, 6004 Ålesund;Øystein Æsøy;;;")
    data = data.decode("utf-8").encode("cp1252")
    page = upload_csv(editor, data)
    body = page.content.decode()
    assert "Windows-1252 (cp1252)" in body
    assert "Ålesund Fisk AS" in body
    confirm_import(editor, page)
    customer = customers_of(world.a)["1001"]
    assert customer.address == "Strandgata 5, 6004 Ålesund"
    assert contacts_of(world.a)[0][1] == "Øystein Æsøy"


def test_a_comma_file_with_quotes_and_tabs_are_read(world, editor):
    data = b'customer_number,name,address\n1001,"Fjellvik, Transport AS","Storgata 1"\n'
    confirm_import(editor, upload_csv(editor, data))
    assert customers_of(world.a)["1001"].name == "Fjellvik, Transport AS"
    data = b"customer_number\tname\n1002\tHavbris AS\n"
    confirm_import(editor, upload_csv(editor, data))
    assert customers_of(world.a)["1002"].name == "Havbris AS"


def test_rows_too_large_to_keep_in_the_session_are_refused(world, editor, monkeypatch):
    monkeypatch.setattr(csv_import, "MAX_SESSION_CHARS", 100)
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;;;;", "1002;Havbris AS;;;;;;;;"))
    body = page.content.decode()
    assert "The file is too large to keep until you confirm the import." in body
    assert NOTHING in body and page.context["token"] is None
    assert import_views.SESSION_KEY not in editor.session


def test_a_number_created_between_preview_and_confirm_stops_the_whole_import(world, editor):
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;Kari;;;", "1002;Havbris AS;;;;;;;;"))
    make_customer(world.a, "1002", "Someone else's Havbris")  # meanwhile
    done = confirm_import(editor, page)
    body = done.content.decode()
    assert "The customers changed after the preview (customer number 1002" in body
    assert "Nothing was imported" in body
    assert set(customers_of(world.a)) == {"1002"}
    assert customers_of(world.a)["1002"].name == "Someone else's Havbris"
    assert contacts_of(world.a) == []
    assert not AuditEvent.objects.filter(action="customer.imported").exists()


def test_a_failure_on_the_second_row_saves_nothing(world, editor, monkeypatch):
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;Kari;;;", "1002;Havbris AS;;;;;;;;"))
    original = Customer.save
    calls = []

    def failing_save(self, *args, **kwargs):
        calls.append(self.number)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Customer, "save", failing_save)
    done = confirm_import(editor, page)
    monkeypatch.undo()
    assert calls == ["1001", "1002"]  # the first row was written, then rolled back
    assert "The import failed and nothing was imported." in done.content.decode()
    assert customers_of(world.a) == {}
    assert contacts_of(world.a) == []
    assert not AuditEvent.objects.filter(action="customer.imported").exists()


def test_a_database_conflict_at_write_time_saves_nothing(world, editor, monkeypatch):
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;;;;", "1002;Havbris AS;;;;;;;;"))
    real_load = csv_import.load_known

    def blind_load(entity, numbers, **kwargs):
        # A customer created by a concurrent import the re-check did not see yet.
        known = real_load(entity, numbers, **kwargs)
        make_customer(world.a, "1002", "Concurrent Havbris")
        return known

    monkeypatch.setattr(csv_import, "load_known", blind_load)
    body = confirm_import(editor, page).content.decode()
    assert "Someone changed the same customers at the same moment" in body
    assert set(customers_of(world.a)) == set()  # the concurrent customer was in the rollback


def test_a_stale_or_unknown_token_gets_a_clear_message(world, editor):
    stale = "This import preview is no longer available"
    for data in ({}, {"token": "not-a-token"}):
        response = editor.post(IMPORT_CONFIRM_URL, data, follow=True)
        assert response.status_code == 200 and stale in response.content.decode()
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;;;;"))
    first_token = page.context["token"]
    newer = upload_csv(editor, csv_bytes("1002;Havbris AS;;;;;;;;"))  # replaces the first
    response = editor.post(IMPORT_CONFIRM_URL, {"token": first_token}, follow=True)
    assert stale in response.content.decode()
    confirm_import(editor, newer)
    again = editor.post(IMPORT_CONFIRM_URL, {"token": newer.context["token"]}, follow=True)
    assert stale in again.content.decode()  # a second click imports nothing twice
    assert set(customers_of(world.a)) == {"1002"}
    assert editor.get(IMPORT_CONFIRM_URL).status_code == 405


def test_an_expired_preview_is_refused(world, editor, monkeypatch):
    page = upload_csv(editor, csv_bytes("1001;Fjellvik AS;;;;;;;;"))
    later = import_views.time.time() + import_views.PENDING_SECONDS + 1
    monkeypatch.setattr(import_views.time, "time", lambda: later)
    body = confirm_import(editor, page).content.decode()
    assert "This import preview has expired." in body
    assert customers_of(world.a) == {}


@pytest.mark.parametrize("role", [Role.GUEST, Role.SALES])
def test_viewers_cannot_import(world, client, role):
    work_in(client, world.users[role], world.a)
    assert client.get(IMPORT_URL).status_code == 403
    data = csv_bytes("1001;Fjellvik AS;;;;;;;;")
    assert upload_csv(client, data).status_code == 403
    assert client.post(IMPORT_CONFIRM_URL, {"token": "x"}).status_code == 403
    assert "Import CSV" not in client.get("/customers/").content.decode()
    assert customers_of(world.a) == {}


@pytest.mark.parametrize(
    "role",
    [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES_ADMIN, Role.ADMIN, Role.MAIN_ADMIN],
)
def test_editors_can_import(world, client, role):
    work_in(client, world.users[role], world.a)
    assert "Import CSV" in client.get("/customers/").content.decode()
    page = client.get(IMPORT_URL)
    assert page.status_code == 200
    assert 'accept=".csv,text/csv"' in page.content.decode()
    confirm_import(client, upload_csv(client, csv_bytes("1001;Fjellvik AS;;;;;;;;")))
    assert set(customers_of(world.a)) == {"1001"}


def test_anonymous_visitors_are_sent_to_the_login_page(db, client):
    assert client.get(IMPORT_URL).status_code == 302
    assert client.post(IMPORT_CONFIRM_URL, {"token": "x"}).status_code == 302


def test_the_import_lands_in_the_current_entity_only(world, client):
    other = make_customer(world.b, "1001", "Svensk Kund AB", email="info@kund.se")
    work_in(client, world.main_admin, world.a)
    page = upload_csv(client, csv_bytes("1001;Fjellvik AS;;post@fjellvik.no;;;Kari;;;"))
    assert "Create customer" in page.content.decode()  # b's 1001 is not "existing" here
    confirm_import(client, page)
    assert customers_of(world.a)["1001"].name == "Fjellvik AS"
    other.refresh_from_db()
    assert (other.name, other.email) == ("Svensk Kund AB", "info@kund.se")
    assert [c[0] for c in contacts_of(world.b)] == []


def test_a_preview_made_in_one_entity_cannot_be_confirmed_in_another(world, client):
    from accounts.tenancy import SESSION_ENTITY_KEY

    work_in(client, world.main_admin, world.a)
    page = upload_csv(client, csv_bytes("1001;Fjellvik AS;;;;;;;;"))
    session = client.session
    session[SESSION_ENTITY_KEY] = world.b.pk
    session.save()
    body = client.post(IMPORT_CONFIRM_URL, {"token": page.context["token"]}, follow=True)
    assert "This preview was made in another entity" in body.content.decode()
    assert customers_of(world.a) == {} and customers_of(world.b) == {}


def test_a_restricted_user_cannot_update_a_customer_they_cannot_see(world, client):
    SecurityPolicy.objects.update_or_create(
        entity=world.a, defaults={"restricted_roles": [Role.COLLECTOR.value]}
    )
    make_customer(world.a, "1001", "Fjellvik AS")  # no collector: hidden from the collector
    work_in(client, world.users[Role.COLLECTOR], world.a)
    body = upload_csv(client, csv_bytes("1001;Renamed AS;;;;;;;;")).content.decode()
    assert "already used by a customer you cannot see" in body
    assert NOTHING in body
    assert customers_of(world.a)["1001"].name == "Fjellvik AS"


def test_one_audit_event_with_the_counts_only(world, editor):
    make_customer(world.a, "1001", "Fjellvik AS")
    data = csv_bytes(
        "1001;;;post@fjellvik.no;;;Kari Nordmann;;;",
        "1002;Havbris AS;;;;;Ola Hansen;;;",
        "1002;;;;;;Per Olsen;;;",
    )
    confirm_import(editor, upload_csv(editor, data))
    event = AuditEvent.objects.get(action="customer.imported")
    assert (event.actor, event.entity) == (world.users[Role.CREDIT_MANAGER], world.a)
    assert event.data == {
        "rows": 3,
        "customers_created": 1,
        "customers_updated": 1,
        "contacts_added": 3,
        "contacts_updated": 0,
    }
    assert AuditEvent.objects.filter(action__startswith="customer.").count() == 1


# -- The pure functions -----------------------------------------------------------------


def test_decode_prefers_utf8_and_falls_back():
    assert csv_import.decode("Å".encode()) == ("Å", "UTF-8")
    assert csv_import.decode(b"\xef\xbb\xbf" + "Å".encode()) == ("Å", "UTF-8 (with BOM)")
    assert csv_import.decode("Ålesund €".encode("cp1252")) == ("Ålesund €", "Windows-1252 (cp1252)")
    # 0x81 is undefined in cp1252; only latin-1 reads every byte.
    assert csv_import.decode(b"\xc5l\x81") == ("Ål\x81", "Latin-1 (ISO-8859-1)")


@pytest.mark.parametrize(
    "line,delimiter",
    [
        ("customer_number;name;email", ";"),
        ("customer_number,name,email", ","),
        ("customer_number\tname\temail", "\t"),
        ('"customer_number;x",name,email', ","),
        ("customer_number", ","),
    ],
)
def test_sniff_delimiter(line, delimiter):
    assert csv_import.sniff_delimiter(line) == delimiter


def test_read_csv_strips_values_keeps_line_numbers_and_skips_blank_lines():
    data = (
        b"  CUSTOMER_NUMBER ; Name ;contact_name\r\n"
        b"\r\n"
        b' 1001 ;"Fjellvik AS\r\navd. Bergen"; Kari \r\n'
        b";;\r\n"
        b"1002;Havbris AS\r\n"
    )
    parsed = read_csv(data)
    assert parsed.problems == []
    assert parsed.columns == ["customer_number", "name", "contact_name"]
    assert [(r.line, r.values["customer_number"], r.values["name"]) for r in parsed.rows] == [
        (3, "1001", "Fjellvik AS\r\navd. Bergen"),
        (6, "1002", "Havbris AS"),
    ]
    assert parsed.rows[0].values["contact_name"] == "Kari"
    assert parsed.rows[1].values["contact_name"] == ""  # a short row


def test_read_csv_reports_unknown_and_doubled_columns():
    problems = read_csv(b"customer_number;name;Name;kundenr\n1;a;b;c\n").problems
    assert problems[0].startswith("Unknown column: “kundenr”. Known columns: customer_number,")
    assert "The column name appears more than once in the header row." in problems


def test_read_csv_ignores_an_empty_trailing_column_but_not_values_under_it():
    assert read_csv(b"customer_number;name;\n1001;Fjellvik AS;\n").problems == []
    problems = read_csv(b"customer_number;name;\n1001;Fjellvik AS;oops\n").problems
    assert problems == [
        "Line 2 has a value in a column without a name in the header row. Name the column "
        "or remove the values."
    ]


def rows(*lines):
    return read_csv(csv_bytes(*lines)).rows


def test_plan_import_create_update_and_contacts():
    known = {
        "1001": KnownCustomer(
            pk=7,
            values={
                "name": "Fjellvik AS",
                "organisation_number": "",
                "email": "post@fjellvik.no",
                "phone": "",
                "address": "",
            },
            contacts={
                "kari nordmann": [
                    {"pk": 3, "name": "Kari Nordmann", "title": "", "email": "", "phone": ""}
                ]
            },
        )
    }
    plan = plan_import(
        rows(
            "1001;Fjellvik AS;;post@fjellvik.no;;;KARI NORDMANN;CFO;;",
            "1001;;923456789;;;;Ola Hansen;;;",
            "1002;Havbris AS;;;;;;;;",
            "1002;;;;;;;;;",
        ),
        known,
    )
    assert plan.ok
    assert [row.labels for row in plan.rows] == [
        ["Update customer (organisation number)", "Update contact KARI NORDMANN (name, title)"],
        ["Add contact Ola Hansen"],
        ["Create customer"],
        ["Same customer as line 4"],
    ]
    assert plan.rows[0].name == "Fjellvik AS" and plan.rows[1].name == "Fjellvik AS"
    assert plan.counts == {
        "customers_created": 1,
        "customers_updated": 1,
        "contacts_added": 1,
        "contacts_updated": 1,
    }
    assert plan.signature() == [
        [2, ["update", "update_contact"]],
        [3, ["add_contact"]],
        [4, ["create"]],
        [5, ["same_customer"]],
    ]


def test_plan_import_refuses_anonymised_and_hidden_customers():
    values = dict.fromkeys(csv_import.CUSTOMER_COLUMNS.values(), "")
    known = {
        "1": KnownCustomer(pk=1, values=values, anonymised=True),
        "2": KnownCustomer(pk=2, values=values, visible=False),
    }
    plan = plan_import(rows("1;New name;;;;;;;;", "2;;;;;;Kari;;;"), known)
    assert not plan.ok
    assert "has been anonymised" in plan.rows[0].problems[0]
    assert "already used by a customer you cannot see" in plan.rows[1].problems[0]


def test_organisation_numbers_that_are_not_norwegian_are_kept():
    plan = plan_import(rows("1;A;SE556677-8899;;;;;;;", "2;B;NO 923 456 789 MVA;;;;;;;"), {})
    assert plan.ok
    assert [op.values["organisation_number"] for op in plan.customers] == [
        "SE556677-8899",
        "NO 923 456 789 MVA",
    ]


def test_run_import_writes_in_the_given_entity(world):
    from django.db import transaction

    parsed = read_csv(csv_bytes("1001;Fjellvik AS;;;;;Kari;;;"))
    with tenant_scope(world.a):
        expected = csv_import.preview(parsed.rows, world.a).signature()
        with transaction.atomic():
            counts = csv_import.run_import(parsed.rows, world.a, expected=expected)
    assert counts["customers_created"] == 1 and counts["contacts_added"] == 1
    assert set(customers_of(world.a)) == {"1001"} and customers_of(world.b) == {}
    assert csv_import.success_message(counts) == "Imported: 1 new customers, 0 updated, 1 contacts."


def test_stored_rows_round_trip():
    row = rows("1001;Fjellvik AS;;;;;Kari;;;")[0]
    assert csv_import.Row.from_list(row.to_list()) == row

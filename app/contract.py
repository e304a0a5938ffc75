"""The workflow's contract for a team that has only the `temporal` CLI: written from the code, never by hand.

    python -m app.contract            print docs/workflow-contract.md
    python -m app.contract --write    write it (tests/test_contract.py fails when the file is stale)

Every name, JSON Schema and result below comes from workflows/case.py and domain/models.py (the updates' and
queries' definitions, the signals' table, the pydantic models); the examples are validated against the models.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from temporalio import workflow

from domain.models import (
    CALL_OUTCOMES,
    COURT_EVENTS,
    OPERATOR_OUTCOMES,
    VISIT_OUTCOMES,
    ApprovalDecisionIn,
    CaseInput,
    CaseStatus,
    CloseIn,
    HoldIn,
    OutcomeIn,
    PaymentIn,
    PlanIn,
    PromiseIn,
    ReleaseIn,
    ReversalIn,
    SuspensionIn,
    WriteOffConfirmIn,
)
from workflows import versioning
from workflows.case import APPLICATION_FIELDS, SIGNALLED, TASK_QUEUE, CollectionCase

PATH = Path(__file__).resolve().parent.parent / "docs" / "workflow-contract.md"
CASE_INPUT = PATH.parent / "case-input.json"  # a whole CaseInput (the default policy pinned) to start a case from
WID = "loan-CLI-0001"  # the case the contract's own opening example starts
CODEC = '--codec-endpoint http://localhost:8081 --codec-auth "Bearer $(cat var/dev-token)"'


@dataclass(frozen=True)
class Example:
    model: type[BaseModel]
    value: dict[str, Any]
    approval: str = ""  # when an operator's input waits for a second person (four-eyes)


EXAMPLES: dict[str, Example] = {
    "record_payment": Example(PaymentIn, {"payment_id": "BANK-20261206-0001", "amount": "500.00", "currency": "CNY"}),
    "reverse_payment": Example(ReversalIn, {"payment_id": "BANK-20261206-0001", "reason": "returned transfer"}),
    "promise_to_pay": Example(PromiseIn, {"amount": "1000.00", "date": "2026-12-15"}),
    "agree_plan": Example(
        PlanIn,
        {"kind": "instalments", "instalments": 6, "first_due": "2027-01-05"},
        "a plan over the policy's plain limits (instalments, waiver, deferral days)",
    ),
    "place_hold": Example(
        HoldIn, {"kind": "dispute", "reference": "letter of 2026-12-04", "received_on": "2026-12-04"}, "bankruptcy, deceased"
    ),
    "release_hold": Example(ReleaseIn, {"kind": "dispute", "resolution": "statement sent, borrower agrees"}, "complaint"),
    "record_outcome": Example(OutcomeIn, {"kind": "court", "outcome": "lawsuit_filed", "reference": "(2026)沪0115民初1234号"}),
    "close_case": Example(CloseIn, {"outcome": "settled_by_agreement", "reason": "settlement agreement 2026-118"}, "always"),
    "record_suspension": Example(
        SuspensionIn,
        {"cause": "force_majeure", "starts_on": "2026-03-01", "ends_on": "2026-04-15", "reference": "疫情封控通知-2026-07"},
    ),
    "confirm_write_off": Example(WriteOffConfirmIn, {"approver": "credit committee", "reference": "WO-2026-031"}, "always"),
    "decide_approval": Example(
        ApprovalDecisionIn,
        {"decision": "approve", "note": "checked the file"},
        "is the second person's decision itself: an operator's, through the console or the API",
    ),
}


def _definition() -> Any:
    defn = workflow._Definition.from_class(CollectionCase)
    assert defn is not None  # a workflow class
    return defn


def _result_type(fn: Any) -> Any:
    return typing.get_type_hints(fn).get("return")


def _schema(tp: Any) -> str:
    schema = TypeAdapter(tp).json_schema()
    return "```json\n" + json.dumps(schema, ensure_ascii=False, indent=2) + "\n```"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _cli(verb: str, name: str, value: dict[str, Any] | None, flag: str = "--name") -> str:
    inp = "" if value is None else f" \\\n    --input '{json.dumps(value, ensure_ascii=False)}'"
    return f"```sh\ntemporal workflow {verb} --workflow-id {WID} {flag} {name}{inp} \\\n    {CODEC}\n```"


def case_input_example() -> str:
    """docs/case-input.json: the input of a case on the default policy, as `POST /v1/cases` would build it."""
    from app.opening import case_input

    inp = case_input(
        loan_id="CLI-0001",
        borrower_id="B-CLI-0001",
        principal="12000.00",
        interest="360.00",
        fees="50.00",
        due_date="2026-11-01",
        policy="default",
    )
    return json.dumps(inp.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2) + "\n"


def render() -> str:
    """docs/workflow-contract.md, section by section, from the workflow's own definition and the input models."""
    defn = _definition()
    updates = {n: d for n, d in defn.updates.items() if n}
    queries = {n: d for n, d in defn.queries.items() if n}
    assert set(EXAMPLES) == set(updates), f"every update has an example: {set(EXAMPLES) ^ set(updates)}"
    out = _workflow_section(defn) + _updates_section(updates) + _signals_section() + _queries_section(queries)
    return "\n".join(out + _values_section())


def _workflow_section(defn: Any) -> list[str]:
    """The title and the workflow itself: its type, id, queue, payloads, how to open a case, who may send."""
    return [
        "# The CollectionCase workflow's contract",
        "",
        "<!-- Written by `python -m app.contract --write` from workflows/case.py and domain/models.py; "
        "tests/test_contract.py fails when it is stale. Do not edit by hand. -->",
        "",
        "For a bank team that talks to Temporal directly (the `temporal` CLI, an SDK in any language): how to find a",
        "case, send it inputs, and read it. Everything the API and the console do goes through these same updates.",
        "",
        "## The workflow",
        "",
        "| | |",
        "|---|---|",
        f"| Workflow type | `{defn.name}` |",
        "| Workflow id | `loan-<loan_id>` (one case per loan; a reopened case is a new run of the same id) |",
        f"| Task queue | `{TASK_QUEUE}` (the worker's `TEMPORAL_TASK_QUEUE`) |",
        "| Namespace | `default` on the dev stack (`TEMPORAL_NAMESPACE`) |",
        "| Payloads | JSON (`json/plain`, pydantic models); encrypted by the payload codec (`binary/encrypted`, AES-GCM) |",
        "",
        "**Opening a case.** Its input (`CaseInput`) carries the policy's whole content, pinned for the case's life.",
        "The bank's systems open cases with `POST /v1/cases` (the API), which builds it, writes the borrower's contact",
        "details to the system of record and starts the workflow. With the CLI alone, start one from",
        f"[`{CASE_INPUT.name}`]({CASE_INPUT.name}) (the default policy; change `loan_id`, `borrower_id`, the",
        "amounts in minor units and `due_date`, and use `loan-<loan_id>` as the id). Such a case has no contact",
        "details on record until the bank's import writes them, so its sends fail as undeliverable until then.",
        "",
        "```sh",
        f"temporal workflow start --type {defn.name} --task-queue {TASK_QUEUE} --workflow-id loan-CLI-0001 \\",
        f"    --input-file docs/{CASE_INPUT.name} {CODEC}",
        "```",
        "",
        "A payment that arrives with the opening data goes in the same request (`POST /v1/cases` with `payment`):",
        "the API opens the case and applies it in one update-with-start, or starts nothing if the case would refuse it.",
        "",
        "**Encryption.** Inputs may be sent as plaintext JSON (the codec passes plaintext through on decode). Results,",
        "queries and the history come back encrypted: add the codec flags to every command that reads them,",
        f"`{CODEC}` on the dev stack (`var/dev-token` holds an operator token; the codec server's `/encode` needs an",
        "operator whose roles may send inputs, `/decode` any operator or the codec token).",
        "",
        "**Who may send.** Temporal does not know the bank's operators or roles: anyone who may signal or update",
        "workflows in the namespace may send these inputs. Grant that only to the bank's systems (a namespace",
        "permission, an API key or an mTLS identity per system), never to people, who use the console or the API,",
        "where roles and four-eyes apply. A signal's events name its sender as `system:<identity>` (the client's",
        "Temporal identity, `--identity` on the CLI), and a signal never acts as an operator: fields that only the",
        f"application sets ({', '.join(f'`{f}`' for f in APPLICATION_FIELDS)}) are refused in a signal, and an input",
        "that needs a second person's approval is refused too.",
        "",
    ]


def _updates_section(updates: dict[str, Any]) -> list[str]:
    """The updates' table, then one part per update: its doc, a CLI example, its input's and result's schemas."""
    out = [
        "## Updates: an answer now",
        "",
        "An update is validated before it touches the history (a refusal leaves no trace in it) and answers with its",
        "result. A refusal is an `ApplicationError` of type `InvalidInput` whose details are",
        '`{"field": ..., "reason": ...}`; nothing changed. A closed case refuses every input (field `case`). An input',
        "from an operator that needs a second person is not applied: the answer says `accepted: false` and the",
        "proposal waits for `decide_approval` from another operator.",
        "",
        "| Update | Input | Result | Waits for a second person |",
        "|---|---|---|---|",
    ]
    for name, d in updates.items():
        [arg] = d.arg_types
        ex = EXAMPLES[name]
        assert ex.model is arg, name
        out.append(f"| [`{name}`](#{name}) | `{_type_name(arg)}` | `{_type_name(_result_type(d.fn))}` | {ex.approval or 'no'} |")
    out += [
        "",
        "*Waits for a second person* applies to an operator's input (the API, the console, `starter.py` with a",
        "token). An update sent directly carries no operator and is applied as the system: grant update permission",
        "on the namespace to the bank's systems only.",
    ]
    for name, d in updates.items():
        [arg] = d.arg_types
        ex = EXAMPLES[name]
        arg.model_validate(ex.value)  # an example that no longer validates fails here (and the test)
        doc = (d.fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += ["", f"### {name}", ""] + ([doc, ""] if doc else [])
        out += [_cli("update execute", name, ex.value), "", f"Input `{_type_name(arg)}`:", "", _schema(arg)]
        out += ["", f"Result `{_type_name(_result_type(d.fn))}`:", "", _schema(_result_type(d.fn))]
    return out


def _signals_section() -> list[str]:
    """Signals: how a refusal is recorded instead of answered, the signals' table and a CLI example."""
    out = [
        "",
        "## Signals: a feed that does not wait",
        "",
        "Each signal is the update of the same name with the same JSON input (`record_promise` is `promise_to_pay`).",
        "It answers nothing: the sender learns of a refusal from the case, where a person sees it the same day.",
        "",
        "- An input the update would refuse, a signal name the case does not know, a payload that is not one JSON",
        "  object, or one that does not decode, is **recorded as rejected**: the case's event `input_rejected` (the",
        "  signal, the input's id, the field and the reason), a row in the database's `rejected_inputs`, the metric",
        "  `collections_inputs_rejected{signal}` on the worker's `/metrics`, and the console's worklist *Inputs",
        "  rejected* (`/console/worklists/inputs-rejected`). Nothing else changes. No signal fails a workflow task.",
        "  Past 100 refused signals in one run, the rest are counted by the metric, not recorded one by one: one",
        "  notice (signal `(flood)`) says so, and the case continues as new when its history is due.",
        "- A payment is applied once per `payment_id`, whether it comes by signal, update, API or CLI, in any order,",
        "  any number of times (the ones after the first answer or record nothing new). The same `payment_id` with",
        "  another amount or currency is refused (field `amount` or `currency`; by signal, recorded as rejected): an id",
        "  names one payment. A court's `enforcement_result` with a `reference` is keyed by the reference, the amount and",
        "  the day: resent that day, it applies nothing; another amount or another day is another distribution.",
        f"- A case that began before signals were inputs (no `{versioning.SIGNALS}` marker in its history) keeps",
        "  ignoring them until it ends or continues as new; send it updates.",
        "- A signal to a loan with no running case fails at once (`workflow not found`): a payment for such a loan",
        "  goes to the API (`POST /v1/loans/{loan_id}/payments`), which keeps it as unapplied (worklist *Unapplied",
        "  payments*), or with the opening data (`POST /v1/cases` with `payment`).",
        "",
        "Which one a feed should use: **updates** when it can wait for the answer (it learns at once of a refusal);",
        "**signals** when it only fires and forgets (a refusal lands in the worklist); the **API** for a loan whose",
        "case may not be open yet.",
        "",
        "| Signal | Input (JSON, as the update) |",
        "|---|---|",
    ]
    for name, model in SIGNALLED.items():
        out.append(f"| `{name}` | `{_type_name(model)}` |")
    payment = EXAMPLES["record_payment"].value
    out += [
        "",
        "```sh",
        f"temporal workflow signal --workflow-id {WID} --name record_payment --identity bank-payments-feed \\",
        f"    --input '{json.dumps(payment)}' {CODEC}",
        f"temporal workflow signal --workflow-id {WID} --name agree_plan --identity bank-payments-feed \\",
        f"    --input '{json.dumps(EXAMPLES['agree_plan'].value)}' {CODEC}",
        "```",
        "",
        "With the codec flags the CLI encrypts the input before it enters the history, as the application's own",
        "inputs are; without them it is accepted too, but stays readable in the history. Dates in these examples",
        "are examples: a promise or an instalment dated in the past is refused.",
        "",
        "A signal's `--identity` is what the sending client says it is: Temporal does not check it. It names the",
        "system in the case's events; who may signal at all is the namespace's permission. Whoever may signal may",
        "send every input above, including releasing a dispute hold, reversing a payment or recording a court event,",
        "which the API keeps to the compliance, payments and legal roles. An update sent directly carries no operator",
        "either: it is applied as the system, like the API's bootstrap token, four-eyes included only for operators'",
        "inputs. Grant signal and update permission to the bank's systems only.",
        "",
        "Then read what became of it: the status query below (`total_paid`, and `events` of kind `payment` or",
        "`input_rejected`), or the console's worklist.",
        "",
    ]
    return out


def _queries_section(queries: dict[str, Any]) -> list[str]:
    """One part per query: its doc, a CLI example and its result's schema (the status's; the state's is CaseInput's)."""
    out = ["## Queries"]
    for name, d in queries.items():
        doc = (d.fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        rt = _result_type(d.fn)
        out += ["", f"### {name}", ""] + ([doc, ""] if doc else [])
        out += [_cli("query", name, None, flag="--type"), ""]
        if rt is CaseStatus:
            out += [f"Result `{_type_name(rt)}`:", "", _schema(rt)]
        else:
            out += [f"Result `{_type_name(rt)}` (the case's input with its state; its schema is `CaseInput`'s)."]
    return out


def _values_section() -> list[str]:
    """The closed vocabularies (outcomes, court events) and how money is written."""
    return [
        "",
        "## Values",
        "",
        f"- Call outcomes (`record_outcome`, `kind` `call`): {', '.join(CALL_OUTCOMES)}.",
        f"- Visit outcomes (`kind` `visit`): {', '.join(VISIT_OUTCOMES)}.",
        f"- Court events (`kind` `court`): {', '.join(COURT_EVENTS)}.",
        f"- Outcomes an operator may close a case with (`close_case`): {', '.join(OPERATOR_OUTCOMES)}.",
        '- Money: decimal strings in major units (`"1234.56"`), never JSON numbers; the case\'s currency (`CNY`).',
        "",
        f"The case's input (`CaseInput`) has {len(CaseInput.model_fields)} fields; see domain/models.py.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.contract", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write {PATH.relative_to(PATH.parent.parent)}")
    args = ap.parse_args(argv)
    text = render()
    if args.write:
        PATH.write_text(text, encoding="utf-8")
        CASE_INPUT.write_text(case_input_example(), encoding="utf-8")
        print(f"wrote {PATH} and {CASE_INPUT}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

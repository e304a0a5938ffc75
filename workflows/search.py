"""Custom search attributes: operators type these names in the Temporal UI."""

from temporalio.common import SearchAttributeKey

STAGE = SearchAttributeKey.for_keyword("CollectionStage")
STATUS = SearchAttributeKey.for_keyword("CaseStatus")
ON_HOLD = SearchAttributeKey.for_bool("OnHold")
OUTSTANDING = SearchAttributeKey.for_float("OutstandingAmount")
DELINQUENT_SINCE = SearchAttributeKey.for_datetime("DelinquentSince")
NEXT_ACTION_AT = SearchAttributeKey.for_datetime("NextActionAt")
POLICY = SearchAttributeKey.for_keyword("PolicyName")
SEGMENT = SearchAttributeKey.for_keyword("Segment")

ALL = [STAGE, STATUS, ON_HOLD, OUTSTANDING, DELINQUENT_SINCE, NEXT_ACTION_AT, POLICY, SEGMENT]

# Names as the Temporal CLI takes them: --search-attribute Name=Type
CLI_TYPES = {
    STAGE: "Keyword", STATUS: "Keyword", ON_HOLD: "Bool", OUTSTANDING: "Double",
    DELINQUENT_SINCE: "Datetime", NEXT_ACTION_AT: "Datetime", POLICY: "Keyword", SEGMENT: "Keyword",
}

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
# How a case ended (paid, settled, recovered, bankrupt, deceased, time_barred, an operator's outcome), or
# written_off for an open case whose write-off an operator confirmed (账销案存: it stays open); unset otherwise
CASE_OUTCOME = SearchAttributeKey.for_keyword("CaseOutcome")
# 商业银行金融资产风险分类办法 (2023) class by days past due: normal, special_mention, substandard, doubtful, loss
RISK_CLASS = SearchAttributeKey.for_keyword("RiskClass")
# 核销: proposed (write-off DPD reached) or confirmed (by an operator); unset before
WRITE_OFF = SearchAttributeKey.for_keyword("WriteOff")
# a proposal waits for a second person (four-eyes; h7 adds this one line and its registration below)
PENDING_APPROVAL = SearchAttributeKey.for_bool("PendingApproval")

ALL = [
    STAGE,
    STATUS,
    ON_HOLD,
    OUTSTANDING,
    DELINQUENT_SINCE,
    NEXT_ACTION_AT,
    POLICY,
    SEGMENT,
    CASE_OUTCOME,
    RISK_CLASS,
    WRITE_OFF,
    PENDING_APPROVAL,
]

# Names as the Temporal CLI takes them: --search-attribute Name=Type
CLI_TYPES = {
    STAGE: "Keyword",
    STATUS: "Keyword",
    ON_HOLD: "Bool",
    OUTSTANDING: "Double",
    DELINQUENT_SINCE: "Datetime",
    NEXT_ACTION_AT: "Datetime",
    POLICY: "Keyword",
    SEGMENT: "Keyword",
    CASE_OUTCOME: "Keyword",
    RISK_CLASS: "Keyword",
    WRITE_OFF: "Keyword",
    PENDING_APPROVAL: "Bool",
}

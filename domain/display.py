"""What people read for the policy's and the case's identifiers: one display name in Chinese and one in English for
every stage, step, action, gate or legal rule, case status and outcome, hold kind, plan kind, call, visit and court
outcome, task status and timeline event. The identifiers stay what the policy files, the case and the database say
(`lawyers_letter`, `credit_bureau`, `contact_window`); only the screens show these names. `tests/test_display.py`
checks that every identifier the policies and the domain use has its two names here, and that STAGES lists the stages
in the order of every policy's ladder (so a list or a chart sorted by `stage_rank` follows the ladder).

Pure data and lookups, no I/O; the console (console/i18n.py) picks the language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Names = Mapping[str, tuple[str, str]]  # identifier -> (Chinese, English)

# The stages in the ladder's order (policies/*.toml `stage`), "new" first: a case opened, no step started yet.
STAGES: Names = {
    "new": ("新开案件", "New case"),
    "reminder": ("提醒通知", "Reminder notice"),
    "first_call": ("首次催收电话", "First collection call"),
    "home_visit": ("上门催收", "Home visit"),
    "overdue_letter": ("逾期信函", "Overdue letter"),
    "lawyers_letter": ("律师函", "Lawyer's letter"),
    "credit_bureau": ("征信上报", "Credit bureau report"),
    "agency": ("委托催收机构", "Collection agency"),
    "litigation": ("起诉", "Litigation"),
    "enforcement": ("强制执行", "Enforcement"),
}

# The steps (policies/*.toml `key`), in ladder order.
STEPS: Names = {
    "reminder_notice": ("提醒和催收通知", "Reminder notice"),
    "first_call": ("第一次催收电话", "First collection call"),
    "home_visit": ("上门催收", "Home visit"),
    "overdue_letter": ("逾期信函", "Overdue letter"),
    "lawyers_letter": ("催收律师函", "Lawyer's letter"),
    "bureau_notice": ("征信上报前告知", "Notice before credit reporting"),
    "bureau_report": ("征信上报", "Credit bureau report"),
    "agency_notice": ("委托催收告知", "Notice before agency placement"),
    "agency_placement": ("委托催收机构", "Agency placement"),
    "litigation": ("起诉", "Lawsuit"),
    "enforcement": ("申请强制执行", "Enforcement"),
}

# domain.policy.Action, and the bureau notice's channel variants (domain.legal.NOTICE_ACTIONS)
ACTIONS: Names = {
    "sms": ("短信", "SMS"),
    "email": ("电子邮件", "Email"),
    "letter": ("信函", "Letter"),
    "call": ("电话", "Call"),
    "visit": ("上门", "Visit"),
    "law_firm": ("律师函", "Law firm letter"),
    "bureau_notice": ("征信告知函", "Credit bureau notice"),
    "bureau_notice_sms": ("征信告知短信", "Credit bureau notice (SMS)"),
    "bureau_notice_email": ("征信告知邮件", "Credit bureau notice (email)"),
    "bureau_report": ("征信上报", "Credit bureau report"),
    "agency_place": ("委托催收机构", "Agency placement"),
    "lawsuit": ("起诉", "Lawsuit"),
    "payment_order": ("支付令", "Payment order"),
    "enforcement": ("强制执行申请", "Enforcement application"),
}

# The contact gate's rules (domain.compliance) and the legal clocks' (domain.legal.LEGAL_RULES)
RULES: Names = {
    "allowed": ("允许", "Allowed"),
    "contact_window": ("联系时段", "Contact hours"),
    "borrower_hours": ("借款人选择的联系时段", "The borrower's chosen hours"),
    "borrower_preference": ("借款人要求不用此方式联系", "A channel the borrower closed"),
    "daily_cap": ("每日次数上限", "Daily cap"),
    "min_interval": ("最短间隔", "Minimum interval"),
    "after_conversation": ("通话后冷静期", "After a conversation"),
    "holiday": ("法定节假日", "Public holiday"),
    "calendar_missing": ("节假日安排缺失", "Holiday calendar missing"),
    "dispute": ("异议处理中", "Dispute"),
    "cease_contact": ("停止联系", "Cease contact"),
    "complaint": ("投诉处理中", "Complaint"),
    "hardship": ("困难缓催", "Hardship"),
    "bankruptcy": ("破产", "Bankruptcy"),
    "deceased": ("借款人身故", "Deceased"),
    "limitation_period": ("诉讼时效", "Limitation period"),
    "enforcement_deadline": ("申请执行期限", "Enforcement deadline"),
    "payment_order_objection": ("支付令异议期", "Payment order objection"),
    "objection_window": ("异议期", "Objection window"),
    "performance_period": ("履行期限", "Performance period"),
    "judgment_dates": ("判决日期", "Judgment dates"),
    "payment_order_service": ("支付令送达", "Payment order service"),
    "bureau_notice": ("征信上报告知期", "Credit report notice period"),
    "time_barred": ("已过诉讼时效", "Time-barred"),
    "gate_again": ("重新检查", "Checked again"),
}

STATUSES: Names = {
    "active": ("进行中", "Active"),
    "paused": ("已暂停", "Paused"),
    "closed": ("已结案", "Closed"),
}

# domain.models.Outcome: how a case closed
OUTCOMES: Names = {
    "paid": ("已还清", "Paid"),
    "settled": ("已结清", "Settled"),
    "written_off": ("已核销", "Written off"),
    "bankrupt": ("破产", "Bankrupt"),
    "deceased": ("借款人身故", "Deceased"),
    "recovered": ("已追回", "Recovered"),
    "time_barred": ("已过诉讼时效", "Time-barred"),
    "settled_by_agreement": ("协商结清", "Settled by agreement"),
    "uncollectable": ("无法收回", "Uncollectable"),
    "sold": ("已转让", "Sold"),
    "error": ("错误开案", "Opened in error"),
}

# domain.models.HoldKind
HOLD_KINDS: Names = {
    "dispute": ("异议", "Dispute"),
    "cease_contact": ("停止联系", "Cease contact"),
    "hardship": ("困难缓催", "Hardship"),
    "complaint": ("投诉", "Complaint"),
    "bankruptcy": ("破产", "Bankruptcy"),
    "deceased": ("身故", "Deceased"),
}

PLAN_KINDS: Names = {
    "instalments": ("分期还款", "Instalments"),
    "deferral": ("展期", "Deferral"),
    "interest_waiver": ("减免利息", "Interest waiver"),
}

# a promise's, a plan's, a task's, a contact's status; a write-off's and an approval's
STATES: Names = {
    "active": ("有效", "Active"),
    "kept": ("已履行", "Kept"),
    "broken": ("已违约", "Broken"),
    "completed": ("已完成", "Completed"),
    "open": ("待处理", "Open"),
    "done": ("已完成", "Done"),
    "expired": ("已过期", "Expired"),
    "cancelled": ("已取消", "Cancelled"),
    "delivered": ("已送达", "Delivered"),
    "failed": ("失败", "Failed"),
    "refused": ("被拒绝", "Refused"),
    "proposed": ("已提议", "Proposed"),
    "confirmed": ("已确认", "Confirmed"),
    "pending": ("待审批", "Pending"),
    "approved": ("已批准", "Approved"),
    "rejected": ("已驳回", "Rejected"),
    "sent": ("已发送", "Sent"),
    "deferred": ("已推迟", "Deferred"),
    "made": ("新承诺", "Made"),
    "closed as written off": ("以核销结案", "Closed as written off"),
}

# domain.models.CALL_OUTCOMES, VISIT_OUTCOMES, COURT_EVENTS
CONTACT_OUTCOMES: Names = {
    "answered": ("已接通", "Answered"),
    "no_answer": ("无人接听", "No answer"),
    "wrong_number": ("号码错误", "Wrong number"),
    "promise": ("承诺还款", "Promise to pay"),
    "dispute": ("提出异议", "Dispute"),
    "refused_to_pay": ("拒绝还款", "Refused to pay"),
    "met_borrower": ("见到借款人", "Met the borrower"),
    "not_home": ("不在家", "Not at home"),
    "refused": ("拒绝沟通", "Refused"),
    "moved": ("已搬离", "Moved away"),
}
COURT_EVENTS: Names = {
    "lawsuit_filed": ("已立案", "Lawsuit filed"),
    "payment_order_issued": ("支付令已签发", "Payment order issued"),
    "payment_order_served": ("支付令已送达", "Payment order served"),
    "objection_filed": ("已提出异议", "Objection filed"),
    "judgment": ("判决", "Judgment"),
    "enforcement_result": ("执行结果", "Enforcement result"),
    "enforcement_closed": ("执行终结", "Enforcement closed"),
}

# domain.models.ApprovalKind
APPROVAL_KINDS: Names = {
    "plan": ("还款计划", "Repayment plan"),
    "closure": ("破产或身故结案", "Closure (bankruptcy or death)"),
    "release": ("解除暂停", "Hold release"),
    "close": ("人工结案", "Closing the case"),
    "write_off": ("核销确认", "Write-off confirmation"),
}

# domain.risk.RiskClass (商业银行金融资产风险分类办法 2023)
RISK_CLASSES: Names = {
    "normal": ("正常", "Normal"),
    "special_mention": ("关注", "Special mention"),
    "substandard": ("次级", "Substandard"),
    "doubtful": ("可疑", "Doubtful"),
    "loss": ("损失", "Loss"),
}

# balance components (domain.policy.Component) and the total
COMPONENTS: Names = {
    "fees": ("费用", "Fees"),
    "interest": ("利息", "Interest"),
    "principal": ("本金", "Principal"),
    "total": ("合计", "Total"),
}

# the case's timeline (case_events.kind), as a person reads it
EVENTS: Names = {
    "opened": ("开案", "Case opened"),
    "step_started": ("步骤开始", "Step started"),
    "step_skipped": ("步骤跳过", "Step skipped"),
    "contact_allowed": ("联系规则允许联系", "Contact allowed by the gate"),
    "contact_refused": ("联系规则拒绝联系", "Contact refused by the gate"),
    "contact_deferred": ("联系已推迟", "Contact deferred"),
    "contact_delivered": ("已联系", "Contact made"),
    "contact_failed": ("联系失败", "Contact failed"),
    "contact_refused_by_channel": ("渠道拒绝", "Refused"),
    "payment": ("收到还款", "Payment received"),
    "payment_reversed": ("还款冲正", "Payment reversed"),
    "promise": ("记录还款承诺", "Promise to pay recorded"),
    "promise_kept": ("承诺已履行", "Promise kept"),
    "promise_broken": ("承诺未履行", "Promise broken"),
    "promise_superseded": ("承诺被替换", "Promise replaced"),
    "promise_not_recorded": ("承诺未记录", "Promise not recorded"),
    "plan_agreed": ("达成还款计划", "Repayment plan agreed"),
    "plan_broken": ("还款计划违约", "Repayment plan broken"),
    "plan_completed": ("还款计划完成", "Repayment plan completed"),
    "plan_reopened": ("还款计划恢复", "Repayment plan reopened"),
    "hold_placed": ("暂停催收", "Hold placed"),
    "hold_released": ("解除暂停", "Hold released"),
    "call_outcome": ("记录通话结果", "Call outcome recorded"),
    "visit_outcome": ("记录上门结果", "Visit outcome recorded"),
    "visit_refused": ("上门被拒绝", "Visit refused"),
    "court_outcome": ("记录法院事件", "Court event recorded"),
    "outcome_timeout": ("未按时反馈结果，进入下一步", "No outcome in time; the ladder moved on"),
    "task_opened": ("创建坐席任务", "Task for the floor opened"),
    "task_requeued": ("任务重新排队（未按时处理）", "Task re-queued (not worked in time)"),
    "task_reassigned": ("任务转派", "Task given to another operator"),
    "write_off_proposed": ("提议核销", "Write-off proposed"),
    "write_off_deferred": ("核销推迟", "Write-off deferred"),
    "write_off_confirmed": ("核销确认", "Write-off confirmed"),
    "closed": ("结案", "Case closed"),
    "reopened": ("重新开案", "Case reopened"),
    "bureau_report_disputed": ("征信报告异议", "Credit report disputed"),
    "dispute_answer_overdue": ("异议答复逾期", "Dispute answer overdue"),
    "contact_details_viewed": ("查看联系方式", "Contact details viewed"),
    "contact_details_erased": ("联系方式已删除", "Contact details erased"),
    "case_found_by_search": ("通过搜索找到案件", "Case found by search"),
    "approval_proposed": ("已提议（待第二人审批）", "Proposed (waits for a second person)"),
    "approval_approved": ("已批准", "Approved"),
    "approval_rejected": ("已驳回", "Rejected"),
    "approval_expired": ("提议已过期", "Proposal expired"),
    "input_rejected": ("信号输入被拒绝（未生效）", "Signalled input refused (nothing applied)"),
    "calendar_recorded": ("记录所用节假日安排", "Holiday calendar recorded"),
    "limitation_restarted": ("诉讼时效中断重新计算", "Limitation period restarted"),
    "limitation_suspended": ("诉讼时效中止", "Limitation period suspended"),
    "limitation_suspension_no_effect": ("诉讼时效中止事由无效力", "Suspension with no effect"),
    "limitation_suspension_shortened": ("诉讼时效中止更正（提前届满）", "Suspension corrected: ends sooner"),
    "pay_by_calendar_missing": ("缺少节假日安排，按最晚日期计算", "Calendar missing: counted to the latest day"),
    "enforcement_period_restarted": ("申请执行时效中断重新计算", "Enforcement period restarted"),
    "enforcement_period_not_restarted": ("申请执行时效已届满，未重新计算", "Enforcement period not restarted"),
    "restructured": ("重组", "Restructured"),
    "borrower_complaint": ("借款人投诉", "Borrower's complaint"),
    "reply_received": ("借款人短信回复", "Borrower's SMS reply"),
    "contact_preferences": ("借款人联系偏好", "Borrower's contact preferences"),
    "limitation_not_restarted": ("诉讼时效未中断", "Limitation period not restarted"),
    "calendar_missing_next_year": ("下一年节假日安排缺失", "Next year's holiday calendar missing"),
    "calendar_missing": ("节假日安排缺失", "Holiday calendar missing"),
    "retention_erased": ("按保存期限删除联系方式", "Contact details erased (retention)"),
}

# the legal clocks (domain.legal.clocks, domain.models.LegalClock.name) and the legal rules a clock may be named by
CLOCKS: Names = {
    "limitation": ("诉讼时效", "Limitation period"),
    "limitation_period": ("诉讼时效", "Limitation period"),
    "enforcement_opens": ("可申请强制执行", "Enforcement may be applied for"),
    "enforcement_deadline": ("申请执行期限", "Enforcement deadline"),
    "objection_window": ("支付令异议期", "Payment order objection window"),
    "payment_order_objection": ("支付令异议期", "Payment order objection window"),
    "performance_period": ("履行期限", "Performance period"),
    "bureau_dispute_answer": ("征信异议答复期限", "Answer to the credit-report dispute"),
}
CLOCK_EDGES: Names = {"ends": ("届满", "ends"), "opens": ("开始", "opens"), "": ("", "")}

# the contact ledger's channels (contact_attempts.channel) as the dashboard shows them
CHANNELS: Names = {
    "sms": ("短信", "SMS"),
    "email": ("电子邮件", "Email"),
    "letter": ("信函", "Letter"),
    "call": ("电话", "Call"),
    "visit": ("上门", "Visit"),
    "law_firm": ("律师事务所", "Law firm"),
    "court": ("法院", "Court"),
    "bureau": ("征信机构", "Credit bureau"),
    "credit_bureau": ("征信机构", "Credit bureau"),
    "agency": ("催收机构", "Collection agency"),
}

KINDS: dict[str, Names] = {
    "stage": STAGES,
    "step": STEPS,
    "action": ACTIONS,
    "rule": RULES,
    "status": STATUSES,
    "outcome": OUTCOMES,
    "hold": HOLD_KINDS,
    "plan": PLAN_KINDS,
    "state": STATES,
    "contact_outcome": CONTACT_OUTCOMES,
    "court": COURT_EVENTS,
    "approval": APPROVAL_KINDS,
    "risk": RISK_CLASSES,
    "component": COMPONENTS,
    "event": EVENTS,
    "channel": CHANNELS,
    "clock": CLOCKS,
    "edge": CLOCK_EDGES,
}
LANGUAGES = ("zh_CN", "en")


def name(kind: str, key: str | None, lang: str = "zh_CN") -> str:
    """The display name of identifier `key` of `kind` (a KINDS key) in `lang`; an identifier with no name yet is shown
    as it is, its underscores as spaces (never an error on a screen)."""
    if key is None or key == "":
        return "–"
    found = KINDS[kind].get(key)
    if found is None:
        return key.replace("_", " ")
    return found[0] if lang.startswith("zh") else found[1]


def outcome_name(key: str, lang: str = "zh_CN") -> str:
    """A call, visit or court outcome, or a case's closing outcome, whichever names it."""
    for kind in ("contact_outcome", "court", "outcome"):
        if key in KINDS[kind]:
            return name(kind, key, lang)
    return name("outcome", key, lang)


def stage_rank(stage: str) -> int:
    """The stage's place on the ladder (STAGES' order); a stage no policy has named yet comes last."""
    order = list(STAGES)
    return order.index(stage) if stage in order else len(order)


def in_ladder_order(stages: Iterable[str]) -> list[str]:
    return sorted(stages, key=lambda s: (stage_rank(s), s))


# --------------------------------------------------------------------------- money

SYMBOLS = {"CNY": "¥", "HKD": "HK$", "USD": "US$", "EUR": "€", "GBP": "£", "JPY": "JP¥", "MOP": "MOP$", "TWD": "NT$"}


def money(minor: int, currency: str = "CNY") -> str:
    """Minor units as a reader of a Chinese bank statement reads them: the currency's symbol before the amount, the
    thousands grouped with commas, the minor units after the point: 385578256 CNY -> '¥3,855,782.56'. Exact (integer
    arithmetic, no float); a negative amount keeps its sign in front ('-¥12.00'); a currency without a symbol here is
    named by its code ('KWD 1,234.500')."""
    from domain.money import MINOR_UNITS

    exponent = MINOR_UNITS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exponent) if exponent else (abs(int(minor)), 0)
    digits = f"{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "")
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{currency} {digits}"


def mask_phone(phone: str | None) -> str:
    """A phone number as a search result shows it: the first three and the last four digits ('138****5678')."""
    if not phone:
        return "–"
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 8:
        return "*" * max(0, len(digits) - 2) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]

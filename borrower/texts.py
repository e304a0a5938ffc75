"""The borrower page's words, Chinese first (the borrower's language on file, or the one they pick), English beside."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("我的贷款", "My loan"),
    "bank": ("示范银行", "Demo Bank"),
    "invalid": (
        "此链接无效。请使用我行短信、邮件或信函中的链接，或致电客服热线。",
        "This link is not valid. Use the link in our SMS, e-mail or letter, or call our hotline.",
    ),
    "expired": (
        "此链接已过期。请使用我行最新消息中的链接，或致电客服热线。",
        "This link has expired. Use the link in our latest message, or call our hotline.",
    ),
    "protect": ("为保护您的个人信息，查看前需要验证身份。", "To protect your information, we check it is you first."),
    "send_code": ("发送验证码到尾号{tail}的手机", "Send a code to the phone ending {tail}"),
    "code_sent": ("验证码已发送，10分钟内有效。", "A code was sent. It is valid for 10 minutes."),
    "code": ("验证码", "Code"),
    "open": ("查看", "Open"),
    "locked": ("尝试次数过多，此链接已锁定，{until}后可再试。", "Too many tries: this link is locked until {until}."),
    "too_soon": ("请稍候再获取验证码（{until}后）。", "Please wait before asking for another code (after {until})."),
    "phone_limit": (
        "今日发送到此手机的验证码已达上限，请明天再试或致电客服。",
        "Today's limit of codes to this phone is reached; try tomorrow or call us.",
    ),
    "wrong_code": ("验证码不正确。", "The code is not right."),
    "no_code": ("验证码已过期或尚未发送，请重新获取。", "The code has expired or was not sent; ask for a new one."),
    "no_phone": ("我行没有您的手机号码，请致电客服热线。", "We have no phone number for you; please call our hotline."),
    "guarantor": (
        "此链接来自发给担保人的信息。如有疑问，请致电客服热线。",
        "This link came with a message to a guarantor. For questions, call our hotline.",
    ),
    "due": ("应还金额", "Amount due"),
    "principal": ("本金", "Principal"),
    "interest": ("利息", "Interest"),
    "fees": ("费用", "Fees"),
    "total": ("合计", "Total"),
    "dpd": ("已逾期{dpd}天", "{dpd} days overdue"),
    "next": ("如在{date}前仍未还款，我行将进行：{step}。", "If nothing is paid by {date}, next: {step}."),
    "paused": ("催收已暂停：{why}。", "Collection is paused: {why}."),
    "closed": ("此贷款的催收已结束。", "Collection on this loan has ended."),
    "time_barred": (
        "此债务已超过诉讼时效（民法典第192条）：是否还款由您自愿决定。如您承诺还款或还款，诉讼时效将重新计算。",
        "This debt is past its limitation period (Civil Code art. 192): repaying is your free choice. If you promise"
        " to pay or pay, the limitation period starts again.",
    ),
    "promise_now": (
        "您已承诺于{date}前还款{amount}元（最后期限{last}）。",
        "You promised to pay {amount} by {date} (last day {last}).",
    ),
    "plan_now": ("还款计划", "Repayment plan"),
    "col_due": ("还款日", "Due"),
    "col_last": ("最后期限（含宽限期）", "Last day (with grace)"),
    "paid": ("已收到的还款", "Payments received"),
    "none": ("暂无", "None yet"),
    "do": ("您可以", "What you can do"),
    "pay": ("立即还款", "Pay now"),
    "pay_unavailable": (
        "付款页面暂时无法打开，请稍后再试或致电客服。",
        "The payment page cannot be opened now; try later or call us.",
    ),
    "payment_sent": (
        "付款已提交。银行确认后，应还金额会更新。",
        "Your payment was sent. The amount due changes once the bank confirms it.",
    ),
    "promise": ("承诺还款", "Promise to pay"),
    "amount": ("金额（元）", "Amount"),
    "date": ("日期", "Date"),
    "hardship": ("说明困难（失业、疾病等）", "Tell us of a hardship (job loss, illness)"),
    "until": ("困难预计持续到", "Expected to last until"),
    "cause": ("原因", "Cause"),
    "dispute": ("对欠款有异议", "Dispute the debt"),
    "complaint": (
        "投诉催收方式（如威胁、联系您的单位）",
        "Complain about how you were treated (threats, calls to your employer)",
    ),
    "note": ("说明", "What happened"),
    "submit": ("提交", "Send"),
    "done": ("已收到，谢谢。", "Received, thank you."),
    "complaint_done": (
        "您的投诉已登记，编号 {ref}。在合规部门处理前，我行将停止对您的一切催收联系。",
        "Your complaint is recorded as {ref}. Until compliance has reviewed it, we stop every collection contact with you.",
    ),
    "plan": ("申请还款计划（分期、展期、减免利息）", "Ask for a repayment plan (instalments, deferral, interest waiver)"),
    "plan_kind": ("方式", "Kind"),
    "plan_instalments": ("期数", "Number of instalments"),
    "plan_first_due": ("首期还款日", "First instalment due"),
    "plan_until": ("展期至", "Pay everything by"),
    "plan_waiver": ("减免利息比例（%）", "Share of the interest waived (%)"),
    "plan_pay_by": ("其余款项还清日", "Pay the rest by"),
    "plan_help": (
        "在我行政策范围内的计划立即生效；超出范围的，将由主管审核后通知您。",
        "A plan inside the bank's limits takes effect at once; one beyond them waits for a supervisor's answer.",
    ),
    "plan_agreed": ("还款计划已生效，请按计划还款。", "Your plan is agreed: pay by its schedule."),
    "plan_waits": (
        "您的申请已提交，需主管审核（最长3天）。审核前原有安排不变。",
        "Your request was sent. A supervisor must approve it (within 3 days); until then nothing changes.",
    ),
    "waiting": ("等待主管审核：{what}", "Waiting for a supervisor: {what}"),
    "preferences": ("联系方式偏好", "How we contact you"),
    "pref_help": (
        "您可以选择我行在法定时间内联系您的时段和方式。法律要求的通知（如征信报送告知）仍会发送。",
        "You may choose when, within the hours the law allows, and how we contact you. Notices the law requires"
        " (such as the credit-bureau notice) are still sent.",
    ),
    "pref_from": ("可联系时段：从", "Contact me from"),
    "pref_to": ("到", "until"),
    "pref_quiet": ("不要通过以下方式联系我", "Do not contact me by"),
    "pref_sms": ("短信", "SMS"),
    "pref_email": ("电子邮件", "E-mail"),
    "pref_call": ("电话", "Phone calls"),
    "pref_work": ("不要到我的工作单位联系我", "Not at my workplace"),
    "pref_done": ("已保存，从下一次联系起生效。", "Saved; it applies from our next contact."),
    "rights": ("您的权利", "Your rights"),
    "rights_text": (
        "如对欠款有异议，您可以提出，处理期间我行暂停催收；如对征信报送的信息有异议，可向我行或征信机构提出，"
        "我行将在20日内答复（征信业管理条例第25条）。我行不会向第三方透露您的欠款信息。如遇威胁、骚扰，请投诉或报警。",
        "You may dispute the debt; collection pauses while we review it. You may object to what was reported to the "
        "credit bureau, with us or the bureau; we answer within 20 days (征信业管理条例 art. 25). We never tell anyone "
        "else of your debt. If you are threatened or harassed, complain or call the police.",
    ),
    "contact": ("联系我们：客服热线 95500（每日8:00–21:00）", "Contact us: hotline 95500 (daily 08:00–21:00)"),
    "error": ("未能处理：{reason}", "Could not do it: {reason}"),
    "language": ("English", "中文"),
    "kind_deferral": ("展期", "Deferral"),
    "kind_instalments": ("分期", "Instalments"),
    "kind_interest_waiver": ("减免利息", "Interest waiver"),
    "hold_dispute": ("您的异议正在处理", "your dispute is being reviewed"),
    "hold_hardship": ("您说明的困难", "the hardship you told us of"),
    "hold_complaint": ("您的投诉正在处理", "your complaint is being reviewed"),
    "hold_cease_contact": ("您要求停止联系", "you asked us to stop contacting you"),
}


MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")  # fmt: skip


def day(lang: str, d: object) -> str:
    """A date as the borrower reads it: 2026年12月20日, or 20 December 2026 (an ISO string or a date)."""
    import datetime as dt

    if d is None or d == "":
        return ""
    when = d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10])
    return f"{when.day} {MONTHS_EN[when.month - 1]} {when.year}" if lang == "en" else f"{when.year}年{when.month}月{when.day}日"


ZONES_ZH = {"Asia/Shanghai": "北京时间", "Asia/Urumqi": "乌鲁木齐时间", "Asia/Hong_Kong": "香港时间"}


def terms(lang: str, words: str | None) -> str:
    """The plan's terms (domain.plans.pay_by_terms, in English) in the borrower's language."""
    import re

    if not words or lang == "en":
        return words or ""
    grace = re.search(r"plus (\d+) days of grace", words)
    tz = re.search(r"24:00 \(([^)]+)\)", words)
    zone = ZONES_ZH.get(tz.group(1), tz.group(1)) if tz else "北京时间"
    head = f"每期应在还款日{f'后{grace.group(1)}天（宽限期）' if grace else ''}当日24:00（{zone}）前还款；"
    if "art. 204" in words:
        return head + "按本计划约定，还款日遇法定节假日或休息日不顺延（民法典第204条）。"
    return head + "最后一日为法定节假日或休息日的，顺延至其后第一个工作日（民法典第203条）。"


def text(lang: str, key: str, **kw: object) -> str:
    zh, en = TEXTS[key]
    return (en if lang == "en" else zh).format(**kw)

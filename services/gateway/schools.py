"""A school's configuration: what the mini-program shows and the rules and prices it applies."""

from __future__ import annotations

import hashlib
import re
import string
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.domain.rules import DEFAULT_RULES, Choice, SchoolRules
from shared.db import Database

# Delivery (console/delivery.py): the fields a CHSI upload file name may use. Each must be plain ASCII
# for CHSI; {student_number} is required because it alone makes the name unique within a school
# (id_last4 or the name are not unique, and names are not ASCII, so neither is offered).
CHSI_NAME_FIELDS = ("student_number", "school_code", "graduation_year")
CHSI_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,100}\.jpg")
_LITERAL_RE = re.compile(r"[A-Za-z0-9_-]*")
PrintSizeName = Literal["1寸", "小2寸", "2寸", "chsi"]  # shared/print_sheet.PRINT_SIZES


def check_chsi_file_name(template: str) -> str:
    """A naming template such as `{student_number}.jpg`: known fields only, safe literal text, `.jpg`."""
    if not template.endswith(".jpg") or len(template) > 100:
        raise ValueError("must end with .jpg and be at most 100 characters")
    try:
        parts = list(string.Formatter().parse(template[: -len(".jpg")]))
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from None
    fields = []
    for literal, name, spec, conversion in parts:
        if not _LITERAL_RE.fullmatch(literal):
            raise ValueError("text outside the fields may only use A-Z, a-z, 0-9, _ and -")
        if name is None:
            continue
        if name not in CHSI_NAME_FIELDS or spec or conversion:
            raise ValueError(f"unknown field {{{name}}}: allowed {', '.join(CHSI_NAME_FIELDS)}")
        fields.append(name)
    if "student_number" not in fields:
        raise ValueError("must contain {student_number}, which makes each name unique")
    return template


class FaqItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(max_length=200)
    answer: str = Field(max_length=2000)


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    label: str = Field(max_length=100)


class ServiceItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=50)
    included: bool = True


class SupportContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=40)
    hours: str = Field(max_length=100)
    qq: str | None = Field(default=None, max_length=20)


CaptureSource = Literal["camera", "album"]
CAPTURE_SOURCES: tuple[CaptureSource, ...] = ("camera", "album")


class SubscribeTemplates(BaseModel):
    """The subscribe-message templates the mini-program asks permission for, at the two taps WeChat allows
    (立即支付, 提交照片); at most 3 per request. The ids are those notify sends (NOTIFY_TEMPLATES)."""

    model_config = ConfigDict(extra="forbid")
    payment: list[str] = Field(default_factory=list, max_length=3)
    submission: list[str] = Field(default_factory=list, max_length=3)


def policy_version_of(agreement: str, privacy_policy: str) -> str:
    """A version for texts that carry none: it changes whenever either text does."""
    digest = hashlib.sha256(f"{agreement}\x00{privacy_policy}".encode()).hexdigest()
    return f"sha256:{digest[:12]}"


class SchoolConfig(BaseModel):
    """Stored in `schools` (one per school code); edited by operators in the console."""

    model_config = ConfigDict(extra="forbid")
    school_code: str = Field(min_length=1, max_length=20)
    name: str = Field(max_length=100)
    notice: str = Field(max_length=5000)  # 温馨提示, read before collecting (seed step 4)
    agreement: str = Field(max_length=20000)  # 《用户服务协议》
    privacy_policy: str = Field(max_length=20000)  # 《隐私政策》
    faq: list[FaqItem] = Field(default_factory=list)
    support: SupportContact
    graduation_years: list[Option]  # 学历/级/届; the first is the default
    mailing_options: list[Option]  # the first is the default: mail to the school registrar
    fee_fen: int = Field(ge=0, le=100_000)
    service_items: list[ServiceItem] = Field(default_factory=list)
    # Students who attended the on-site shoot may collect online only if the school allows it,
    # and then pay the extra manual-review fee (seed step 3).
    allow_onsite_attendees: bool = DEFAULT_RULES.allow_onsite_attendees
    onsite_extra_fee_fen: int = Field(default=DEFAULT_RULES.onsite_extra_fee_fen, ge=0, le=100_000)
    # The rules' defaults live in one place: services/gateway/domain/rules.py.
    pass_mark: float = Field(default=DEFAULT_RULES.pass_mark, ge=0, le=100)  # face comparison (seed step 14)
    standardisations_per_day: int = Field(default=DEFAULT_RULES.standardisations_per_day, ge=1, le=10)
    free_resubmissions: int = Field(default=DEFAULT_RULES.free_resubmissions, ge=0, le=10)
    # Delivery: how each photo of the CHSI upload package is named, and the print size of the sheets.
    chsi_file_name: str = Field(default="{student_number}.jpg", max_length=100)
    print_size: PrintSizeName = "2寸"
    # Field practice: the capture sources the school accepts (many provinces: the camera only, no album).
    capture_sources: list[CaptureSource] = Field(default_factory=lambda: list(CAPTURE_SOURCES), min_length=1)
    # The version of 《用户服务协议》/《隐私政策》 a consent is recorded against; empty: derived from the texts.
    policy_version: str = Field(default="", max_length=32)
    subscribe_templates: SubscribeTemplates = Field(default_factory=SubscribeTemplates)

    @field_validator("capture_sources")
    @classmethod
    def _unique_sources(cls, value: list[CaptureSource]) -> list[CaptureSource]:
        return list(dict.fromkeys(value))

    def current_policy_version(self) -> str:
        return self.policy_version or policy_version_of(self.agreement, self.privacy_policy)

    @field_validator("chsi_file_name")
    @classmethod
    def _chsi_file_name(cls, value: str) -> str:
        return check_chsi_file_name(value)

    def rules(self) -> SchoolRules:
        """The rules every decision and every count shown to the student apply for this school."""
        return SchoolRules(
            standardisations_per_day=self.standardisations_per_day,
            pass_mark=self.pass_mark,
            free_resubmissions=self.free_resubmissions,
            allow_onsite_attendees=self.allow_onsite_attendees,
            fee_fen=self.fee_fen,
            onsite_extra_fee_fen=self.onsite_extra_fee_fen,
            graduation_years=tuple(Choice(o.code, o.label) for o in self.graduation_years),
            mailing_options=tuple(Choice(o.code, o.label) for o in self.mailing_options),
            capture_sources=tuple(self.capture_sources),
        )


class SchoolPublicView(BaseModel):
    """What the mini-program receives: everything but internal rules."""

    school_code: str
    name: str
    notice: str
    agreement: str
    privacy_policy: str
    faq: list[FaqItem]
    support: SupportContact
    graduation_years: list[Option]
    mailing_options: list[Option]
    fee_fen: int
    service_items: list[ServiceItem]
    capture_sources: list[CaptureSource]
    policy_version: str
    subscribe_templates: SubscribeTemplates

    @classmethod
    def of(cls, school: SchoolConfig) -> SchoolPublicView:
        return cls.model_validate({**school.model_dump(), "policy_version": school.current_policy_version()})


def demo_school(school_code: str = "10487", name: str = "示范大学") -> SchoolConfig:
    """The school `make run`, `make demo` and the tests use; texts follow the seed."""
    return SchoolConfig(
        school_code=school_code,
        name=name,
        notice="请在小程序中操作，只能在手机上操作。完成学信网采集码采集即可。"
        "仅限未参加学校统一线下拍摄或因学信网人像比对未成功需要做身份复核的学生使用。",
        agreement="《用户服务协议》：本服务提供图像采集、照片标准化、人工审核、冲印、上传学信网、邮寄等服务。",
        privacy_policy="《隐私政策》：您的姓名、学号、证件号后4位、手机号和照片仅用于本次采集，按规定期限删除。",
        faq=[
            FaqItem(
                question="证件号后4位怎么填？",
                answer="输入采集码上证件号码星号后面的字符，如有括号也包含在内，例如 2(3)。",
            ),
            FaqItem(question="每天能制作几次？", answer="每日限3次照片标准化，超过后冷静期为24小时。"),
        ],
        support=SupportContact(
            phone="027-87885551", hours="周一至周五 8:30-12:00 14:00-17:30", qq="78284566"
        ),
        graduation_years=[
            Option(code="2025", label="普通本专科_2025届毕业生"),
            Option(code="2024", label="普通本专科_2024届毕业生"),
        ],
        mailing_options=[
            Option(code="registrar", label="直接邮寄学校学籍部门"),
            Option(code="self_pickup", label="学籍部门统一领取"),
        ],
        fee_fen=3500,
        service_items=[
            ServiceItem(name=n)
            for n in (
                "图像采集",
                "照片标准化",
                "人工审核",
                "照片冲印",
                "上传学信网",
                "邮寄",
                "人像比对",
                "人证核验",
            )
        ],
        allow_onsite_attendees=False,
        onsite_extra_fee_fen=2000,
        policy_version="2026-01",
        # notify's DEMO_TEMPLATES: the payment, the comparison and the review results.
        subscribe_templates=SubscribeTemplates(
            payment=["demo_order_paid"], submission=["demo_match_result", "demo_review_result"]
        ),
    )


class Schools:
    def __init__(self, database: Database, *, cache_s: float = 5.0) -> None:
        self.collection = database.db["schools"]
        # school code -> (config, cached until): the status endpoint, polled every second by every
        # student, shows counts from the school's rules; a school changes rarely, so a short cache
        # saves a read per request (another replica sees an operator's edit within `cache_s`).
        self._cache: dict[str, tuple[SchoolConfig | None, float]] = {}
        self._cache_s = cache_s

    async def get(self, school_code: str) -> SchoolConfig | None:
        cached = self._cache.get(school_code)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        doc = await self.collection.find_one({"_id": school_code})
        config = None
        if doc is not None:
            doc.pop("_id")
            config = SchoolConfig.model_validate(doc)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[school_code] = (config, time.monotonic() + self._cache_s)
        return config

    async def rules(self, school_code: str | None) -> SchoolRules:
        """The school's rules; the defaults where the school is not (yet) configured."""
        school = await self.get(school_code) if school_code else None
        return school.rules() if school else DEFAULT_RULES

    async def put(self, config: SchoolConfig) -> None:
        doc = {"_id": config.school_code, **config.model_dump()}
        await self.collection.replace_one({"_id": config.school_code}, doc, upsert=True)
        self._cache.pop(config.school_code, None)

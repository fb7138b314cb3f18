"""A second campaign's form, different in every way from the example's: the tests of the generic
form engine (making, reading, aggregating) use it to show that no code knows the example's form."""
from __future__ import annotations

from forms.campaign import CampaignDefinition, UnitRow
from forms.schema import FieldSpec, FormSchema, Grid, GridRow

def safety_definition(base: CampaignDefinition) -> CampaignDefinition:
    """Another campaign's form: other rows, other measures, a date, decimals, a count."""
    form = FormSchema(
        title="安全生产大检查情况统计表",
        grid=Grid(label="检查情况", row_header="检查对象",
                  rows=[GridRow(key="enterprise", label="生产经营企业"), GridRow(key="venue", label="人员密集场所")],
                  columns=[FieldSpec(key="checks", label="检查次数", type="integer", required=True, min=0, max=999,
                                     aggregate="sum"),
                           FieldSpec(key="fines", label="罚款金额（万元）", type="number", min=0, decimals=2,
                                     aggregate="sum"),
                           FieldSpec(key="closed", label="责令停业家数", type="integer", min=0, aggregate="count")]),
        fields=[FieldSpec(key="checked_on", label="检查日期", type="date", required=True),
                FieldSpec(key="lead", label="带队领导", type="text", required=True, max_length=10, aggregate="collect"),
                FieldSpec(key="summary", label="主要问题", type="text", max_length=200, aggregate="collect")],
        instructions=["请如实填写，没有的填 0。"])
    units = [UnitRow(code="AQ1", name="甲园区安监站", kind="park", email="aq1@units.example",
                     leader_email="lead.aq1@units.example")]
    return CampaignDefinition(directory=base.directory, spec=base.spec.model_copy(update={"id": "safety-2024-1"}),
                              units=units, form=form, notice_body="通知正文")

// 支付 (admin, support): payment anomalies with their action, refunds and their state, the daily
// reconciliation with its CSV. On the money API (console/payments.py). A refund is sent with an
// Idempotency-Key made once per anomaly shown, and its button is disabled while it runs: a double click
// refunds once (the server also answers a repeat with the refund already asked for).

import { ApiError, get, newKey, post, query, seg } from "./api.js";
import { download } from "./downloads.js";
import { field, fmtFen, fmtTime, h, replace, table } from "./dom.js";

const KIND_LABELS = {
  stale_order_paid: "旧订单被支付（需退款）",
  amount_mismatch: "金额不符",
  unknown_order: "未知订单",
  unknown_refund: "未知退款",
  appid_mismatch: "AppID 不符",
  mchid_mismatch: "商户号不符",
  refund_abnormal: "退款异常",
  refund_closed: "退款关闭",
};
const ACTION_LABELS = { refund: "退款", investigate: "核查", wait: "等待微信支付", none: "无需处理" };
const REFUND_KINDS = { stale_payment: "旧订单自动退款", operator: "人工退款", external: "商户平台退款" };
const REFUND_STATUS = { requested: "已申请", processing: "处理中", success: "已退款", closed: "已关闭", abnormal: "异常" };
const errorText = (err) => (err instanceof ApiError ? `${err.message}（${err.code}）` : String(err));

function flash(box, text, kind = "info") {
  box.className = `status ${kind}`;
  box.textContent = text;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function paymentsPage(root) {
  const status = h("p.status", { role: "status" });
  const stateFilter = h("select", h("option", { value: "open" }, "待处理"), h("option", { value: "resolved" }, "已处理"), h("option", { value: "all" }, "全部"));
  const anomalies = h("div.list");
  const refunds = h("div.list");
  const today = new Date();
  const since = h("input", { type: "date", value: isoDay(new Date(today.getTime() - 13 * 86400000)) });
  const until = h("input", { type: "date", value: isoDay(today) });
  const reconciliation = h("div");
  const csvBox = h("p.status");
  const csv = h("button", { type: "button" }, "下载 CSV");
  const refresh = h("button", { type: "button" }, "查询");
  stateFilter.addEventListener("change", loadAnomalies);
  refresh.addEventListener("click", loadReconciliation);
  csv.addEventListener("click", () =>
    download(`/payments/reconciliation.csv${query({ since: since.value, until: until.value })}`, csvBox, {
      fallbackName: `reconciliation-${since.value}-${until.value}.csv`,
    }),
  );
  replace(
    root,
    h("h2", "支付"),
    status,
    h("h3", "支付异常"),
    field("状态", stateFilter),
    anomalies,
    h("h3", "退款记录"),
    refunds,
    h("h3", "每日对账（北京时间）"),
    h("div.inline", field("起", since), field("止", until), refresh, csv),
    csvBox,
    reconciliation,
  );
  root.dataset.page = "payments";
  // One key per anomaly for the life of the page: a repeat click replays the first answer.
  const keys = new Map();

  async function loadAnomalies() {
    let data;
    try {
      data = await get(`/payments/anomalies${query({ state: stateFilter.value })}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    replace(anomalies, data.anomalies.length ? data.anomalies.map(renderAnomaly) : h("p.empty", "没有支付异常"));
  }

  function renderAnomaly(item) {
    const box = h("p.status");
    const actions = h("div.actions");
    if (item.action === "refund") {
      const button = h("button.reject", { type: "button" }, "退款给付款人");
      button.addEventListener("click", async () => {
        if (button.disabled) return;
        button.disabled = true;
        if (!keys.has(item.anomaly_id)) keys.set(item.anomaly_id, newKey());
        try {
          const view = await postWithKey(`/payments/anomalies/${seg(item.anomaly_id)}/refund`, keys.get(item.anomaly_id));
          const latest = view.refunds[view.refunds.length - 1];
          flash(box, `退款已提交：${latest ? `${latest.out_refund_no} ${REFUND_STATUS[latest.status] || latest.status}` : ""}`, "ok");
          card.dataset.action = view.action;
          loadRefunds();
        } catch (err) {
          flash(box, `退款失败：${errorText(err)}`, "error");
          button.disabled = false;
        }
      });
      actions.append(button);
    } else if (item.action === "investigate") {
      const note = h("input", { type: "text", maxlength: "500", placeholder: "核查结果（必填）" });
      const resolve = h("button", { type: "button" }, "标记已核查");
      resolve.addEventListener("click", async () => {
        if (note.value.trim().length < 2) {
          flash(box, "请填写核查结果", "warn");
          return;
        }
        resolve.disabled = true;
        try {
          const view = await post(`/payments/anomalies/${seg(item.anomaly_id)}/resolve`, { note: note.value.trim() });
          flash(box, `已标记：${view.resolution ? view.resolution.note : ""}`, "ok");
          card.dataset.action = view.action;
        } catch (err) {
          flash(box, `操作失败：${errorText(err)}`, "error");
          resolve.disabled = false;
        }
      });
      actions.append(note, resolve);
    }
    const details = Object.entries(item.details || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("，");
    const card = h(
      "article.card",
      { dataset: { anomalyId: item.anomaly_id, kind: item.kind, action: item.action } },
      h("header", h("strong", KIND_LABELS[item.kind] || item.kind), ` · 需要：${ACTION_LABELS[item.action] || item.action} · ${fmtTime(item.at)}`),
      h("p", `订单 ${item.out_trade_no || "—"} · 申请 ${item.application_id || "—"} · 学校 ${item.school_code || "—"}`),
      details ? h("p.hint", details) : null,
      item.resolution ? h("p.ok", `已处理：${item.resolution.note}`) : null,
      item.refunds.length
        ? table(
            ["退款单号", "金额", "状态", "申请时间", "完成时间"],
            item.refunds.map((r) => [r.out_refund_no, fmtFen(r.amount_fen), REFUND_STATUS[r.status] || r.status, fmtTime(r.requested_at), fmtTime(r.completed_at)]),
          )
        : null,
      actions,
      box,
    );
    return card;
  }

  async function loadRefunds() {
    try {
      const data = await get(`/payments/refunds${query({ limit: 100 })}`);
      replace(
        refunds,
        table(
          ["退款单号", "订单", "申请", "学校", "金额", "类型", "状态", "原因", "申请时间", "完成时间"],
          data.refunds.map((r) => [r.out_refund_no, r.out_trade_no, r.application_id, r.school_code || "—", fmtFen(r.amount_fen), REFUND_KINDS[r.kind] || r.kind, REFUND_STATUS[r.status] || r.status, r.reason, fmtTime(r.requested_at), fmtTime(r.completed_at)]),
          { empty: "还没有退款" },
        ),
      );
    } catch (err) {
      flash(status, errorText(err), "error");
    }
  }

  async function loadReconciliation() {
    let data;
    try {
      data = await get(`/payments/reconciliation${query({ since: since.value, until: until.value })}`);
    } catch (err) {
      replace(reconciliation, h("p.error", errorText(err)));
      return;
    }
    const row = (d, label) => [label || d.day, String(d.orders), String(d.paid), fmtFen(d.paid_fen), String(d.refunded), fmtFen(d.refunded_fen), fmtFen(d.net_fen)];
    replace(
      reconciliation,
      table(["日期", "订单", "已支付", "收款", "已退款", "退款额", "净额"], [...data.days.map((d) => row(d)), row(data.total, "合计")]),
    );
  }

  loadAnomalies();
  loadRefunds();
  loadReconciliation();
  return {};
}

async function postWithKey(path, key) {
  // api.js's post() has no header hook: the key goes in this one request's headers.
  return post(path, {}, { "Idempotency-Key": key });
}

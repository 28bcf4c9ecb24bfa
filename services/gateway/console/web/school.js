// School staff's pages (学生进度, 学籍复核), the admins' 账号 page (invitations) and the set-password form
// an invitation link opens. All data is rendered as text (dom.js).

import { ApiError, get, post, query, seg } from "./api.js";
import { barList } from "./charts.js";
import { field, fmtTime, h, replace, table } from "./dom.js";
import { STATE_LABELS } from "./pages.js";

const stateLabel = (state) => STATE_LABELS[state] || state;
const errorText = (err) => (err instanceof ApiError ? `${err.message}（${err.code}）` : String(err));

function flash(box, text, kind = "info") {
  box.className = `status ${kind}`;
  box.textContent = text;
}

/** A school picker when the operator has several schools (admins: every school); resolves to the code. */
async function schoolPicker(ctx, onPick) {
  if (!ctx.operator.all_schools && ctx.operator.schools.length === 1) {
    onPick(ctx.operator.schools[0]);
    return null;
  }
  const picker = h("select");
  picker.addEventListener("change", () => onPick(picker.value));
  let codes = ctx.operator.schools;
  if (ctx.operator.all_schools) {
    try {
      codes = (await get("/schools")).schools.map((s) => s.school_code);
    } catch (err) {
      codes = [];
    }
  }
  replace(picker, codes.map((code) => h("option", { value: code }, code)));
  if (codes.length) onPick(codes[0]);
  return field("学校", picker);
}

// --- 学生进度 ------------------------------------------------------------------------------------

export function progressPage(root, ctx) {
  const status = h("p.status", { role: "status" });
  const pickerBox = h("div");
  const body = h("div.detail");
  replace(root, h("h2", "学生进度"), pickerBox, status, body);
  root.dataset.page = "progress";

  async function show(code) {
    let data;
    try {
      data = await get(`/school/progress${query({ school: code })}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    flash(status, `学校 ${data.school_code}：名单 ${data.students} 人，已开始 ${data.started} 人，审核通过 ${data.approved} 人`);
    const states = barList("states", { empty: "还没有学生开始" });
    const order = Object.keys(STATE_LABELS);
    states.update(
      data.by_state
        .slice()
        .sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state))
        .map((s) => ({ key: s.state, label: stateLabel(s.state), value: s.count, data: { state: s.state } })),
    );
    replace(
      body,
      h("section.summary", { dataset: { school: data.school_code } },
        h("div.figure", h("strong", String(data.students)), h("span", "名单人数")),
        h("div.figure", h("strong", String(data.started)), h("span", "已开始")),
        h("div.figure", h("strong", { dataset: { notStarted: String(data.not_started.length) } }, String(data.students - data.started)), h("span", "未开始")),
        h("div.figure", h("strong", { dataset: { stuck: String(data.stuck.length) } }, String(data.stuck.length)), h("span", "卡住")),
        h("div.figure", h("strong", String(data.approved)), h("span", "审核通过")),
      ),
      h("h3", "按状态"),
      states.element,
      h("h3", "按班级"),
      table(
        ["班级", "人数", "未开始", "进行中", "卡住", "审核通过"],
        data.by_class.map((c) => [c.class_name || "（未填班级）", String(c.students), String(c.not_started), String(c.in_progress), String(c.stuck), String(c.approved)]),
      ),
      h("h3", `卡住的学生（${data.stuck.length}）`),
      table(
        ["学号", "姓名", "班级", "状态", "原因", "自"],
        data.stuck.map((s) => [s.student_number, s.name, s.class_name || "—", stateLabel(s.state), s.reason, fmtTime(s.since)]),
        { empty: "没有卡住的学生" },
      ),
      h("h3", `还没开始的学生（${data.not_started.length}）`),
      table(
        ["学号", "姓名", "班级"],
        data.not_started.map((s) => [s.student_number, s.name, s.class_name || "—"]),
        { empty: "名单上的学生都已开始" },
      ),
      data.truncated ? h("p.hint", "名单较长，仅显示前 500 人") : null,
    );
  }

  schoolPicker(ctx, show).then((picker) => picker && replace(pickerBox, picker));
  return {};
}

// --- 学籍复核 ------------------------------------------------------------------------------------

export function registrarPage(root, ctx) {
  const status = h("p.status", { role: "status" });
  const pickerBox = h("div");
  const list = h("div.list");
  replace(
    root,
    h("h2", "学籍复核"),
    h("p.hint", "这些学生多次提交合格照片仍未通过人脸比对，请核对录取照片后决定；每个决定都需要写明理由并记入审计日志。"),
    pickerBox,
    status,
    list,
  );
  root.dataset.page = "registrar";
  let reasons = [];
  const reasonsReady = get("/reviews/reasons")
    .then((data) => {
      reasons = data.reasons;
    })
    .catch(() => {});

  async function show(code) {
    let data;
    try {
      [data] = await Promise.all([get(`/school/cases${query({ school: code })}`), reasonsReady]);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    flash(status, `待复核 ${data.cases.length} 件`);
    replace(list, data.cases.length ? data.cases.map((item) => renderCase(code, item)) : h("p.empty", "没有待复核的学生"));
  }

  function renderCase(code, item) {
    const box = h("p.status");
    const note = h("input", { type: "text", maxlength: "400", placeholder: "理由（必填，记入审计日志）" });
    const reason = h("select", h("option", { value: "" }, "不通过原因…"), reasons.map((r) => h("option", { value: r.code }, r.label)));
    const approve = h("button.approve", { type: "button" }, "确认本人，通过");
    const reject = h("button.reject", { type: "button" }, "不通过");
    const decide = async (button, decision) => {
      if (note.value.trim().length < 2) {
        flash(box, "请填写理由", "warn");
        return;
      }
      if (decision === "rejected" && !reason.value) {
        flash(box, "请选择不通过原因", "warn");
        return;
      }
      approve.disabled = reject.disabled = true;
      try {
        const result = await post(`/school/cases/${seg(item.application_id)}/decision`, {
          decision,
          reason_code: decision === "rejected" ? reason.value : null,
          note: note.value.trim(),
        });
        flash(box, `${decision === "approved" ? "已通过" : "已退回"}${result.reason ? `：${result.reason}` : ""}`, "ok");
        card.dataset.decided = decision;
      } catch (err) {
        flash(box, `操作失败：${errorText(err)}`, "error");
        approve.disabled = reject.disabled = false;
      }
    };
    approve.addEventListener("click", () => decide(approve, "approved"));
    reject.addEventListener("click", () => decide(reject, "rejected"));
    const card = h(
      "article.card",
      { dataset: { applicationId: item.application_id } },
      h("header", h("strong", item.name || "—"), ` ${item.student_number} · ${item.class_name || "—"} · 比对分数 ${item.score == null ? "—" : item.score.toFixed(1)}${item.band ? `（${item.band}）` : ""} · ${fmtTime(item.updated_at)}`),
      h(
        "div.photos",
        item.photo_url ? h("figure", h("img.photo", { src: item.photo_url, alt: "提交的照片" }), h("figcaption", "提交的照片")) : null,
        h("figure", h("img.photo", { src: item.admission_photo_url, alt: "录取照片" }), h("figcaption", "录取照片")),
      ),
      h("div.inline", note, approve, reason, reject),
      box,
    );
    return card;
  }

  schoolPicker(ctx, show).then((picker) => picker && replace(pickerBox, picker));
  return {};
}

// --- 账号（管理员邀请） ------------------------------------------------------------------------------

const ROLE_NAMES = { admin: "管理员", reviewer: "审核员", support: "客服", school: "学校老师" };

export function accountsPage(root) {
  const status = h("p.status", { role: "status" });
  const list = h("div.list");
  const email = h("input", { type: "email", maxlength: "254", required: true, name: "invite-email" });
  const role = h("select", { name: "invite-role" }, ["school", "reviewer", "support"].map((r) => h("option", { value: r }, ROLE_NAMES[r])));
  const schools = h("input", { type: "text", maxlength: "200", placeholder: "如 10487,10001", name: "invite-schools" });
  const submit = h("button", { type: "submit" }, "邀请");
  const result = h("div.invite-result");
  const form = h("form.upload", h("h3", "邀请账号"), field("邮箱", email), field("角色", role), field("学校代码（逗号分隔）", schools), submit, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const invite = await post("/operators/invite", {
        email: email.value.trim(),
        role: role.value,
        schools: schools.value.split(/[,，\s]+/).filter(Boolean),
      });
      const link = new URL(invite.invite_path, location.origin).href;
      replace(
        result,
        h("p.status.ok", `已创建 ${invite.email}（${ROLE_NAMES[invite.role] || invite.role}，${invite.schools.join("、")}）。请把下面的一次性链接发给对方，${fmtTime(invite.expires_at)} 前有效，只显示这一次：`),
        h("input.invite-link", { type: "text", readonly: true, value: link }),
      );
      load();
    } catch (err) {
      replace(result, h("p.status.error", `邀请失败：${errorText(err)}`));
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h("h2", "账号"), status, list, form);
  root.dataset.page = "accounts";

  async function load() {
    try {
      const data = await get("/operators");
      replace(
        list,
        table(
          ["邮箱", "角色", "学校", "状态", "创建"],
          data.operators.map((o) => [o.email, ROLE_NAMES[o.role] || o.role, o.schools.join("、") || "全部", !o.active ? "停用" : o.password_set ? "已启用" : "待设置密码", fmtTime(o.created_at)]),
        ),
      );
    } catch (err) {
      flash(status, errorText(err), "error");
    }
  }

  load();
  return {};
}

// --- 设置密码（邀请链接） -------------------------------------------------------------------------

export function setPasswordForm(token, done) {
  const password = h("input", { type: "password", name: "new-password", autocomplete: "new-password", minlength: "12", maxlength: "256", required: true });
  const again = h("input", { type: "password", name: "new-password-again", autocomplete: "new-password", minlength: "12", maxlength: "256", required: true });
  const error = h("p.status.error", { role: "alert", hidden: true });
  const submit = h("button", { type: "submit" }, "设置密码");
  const form = h("form.login", h("h1", "设置管理后台密码"), field("新密码（至少 12 位）", password), field("再输入一次", again), error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (password.value.length < 12 || password.value !== again.value) {
      error.textContent = password.value.length < 12 ? "密码至少 12 位" : "两次输入不一致";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      await post("/operators/set-password", { token, password: password.value });
      done("密码已设置，请登录");
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      submit.disabled = false;
    }
  });
  return form;
}

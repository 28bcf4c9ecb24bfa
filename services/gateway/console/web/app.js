// The operator console: sign-in, role-aware navigation, hash routes, one keyboard dispatcher.
// The server enforces every permission; the navigation only hides what the role cannot do.

import { ApiError, get, onUnauthenticated, post } from "./api.js";
import { h, replace } from "./dom.js";
import {
  auditPage,
  dashboardPage,
  deadLettersPage,
  deliveryPage,
  exceptionsPage,
  schoolsPage,
  studentsPage,
} from "./pages.js";
import { paymentsPage } from "./payments.js";
import { reviewPage } from "./review.js";
import { accountsPage, progressPage, registrarPage, setPasswordForm } from "./school.js";

const ROLE_LABELS = { admin: "管理员", reviewer: "审核员", support: "客服", school: "学校老师" };

// What each role may do (mirrors docs/console.md; the server is the authority).
const PERMISSIONS = {
  review: ["admin", "reviewer"],
  override: ["admin", "reviewer"],
  "students.write": ["admin", "support"],
  roster: ["admin", "support"],
  delivery: ["admin", "support"],
  payments: ["admin", "support"],
  // School staff reach only their own pages (the server refuses them everywhere else).
  staff: ["admin", "reviewer", "support"],
  exports: ["admin", "support", "school"],
  school: ["admin", "school"],
  registrar: ["school"],
  admin: ["admin"],
};

const PAGES = [
  { route: "review", label: "照片审核", page: reviewPage, needs: "review" },
  { route: "exceptions", label: "异常队列", page: exceptionsPage, needs: "review" },
  { route: "progress", label: "学生进度", page: progressPage, needs: "school" },
  { route: "registrar", label: "学籍复核", page: registrarPage, needs: "registrar" },
  { route: "students", label: "学生查询", page: studentsPage, needs: "staff" },
  { route: "schools", label: "学校管理", page: schoolsPage, needs: "staff" },
  { route: "delivery", label: "交付", page: deliveryPage, needs: "exports" },
  { route: "payments", label: "支付", page: paymentsPage, needs: "payments" },
  { route: "dashboard", label: "数据看板", page: dashboardPage, needs: "staff" },
  { route: "deadletters", label: "死信", page: deadLettersPage, needs: "admin" },
  { route: "accounts", label: "账号", page: accountsPage, needs: "admin" },
  { route: "audit", label: "审计日志", page: auditPage, needs: "admin" },
];

const app = document.getElementById("app");
let session = null; // {operator, can(permission)}
let current = null; // the page shown: {onKey?, destroy?}

function context(operator) {
  return {
    operator,
    role: operator.role,
    can: (permission) => (PERMISSIONS[permission] || []).includes(operator.role),
  };
}

function allowed(entry) {
  return !entry.needs || session.can(entry.needs);
}

function leavePage() {
  if (current && current.destroy) current.destroy();
  current = null;
}

// --- sign-in --------------------------------------------------------------------------------------

function showLogin(message) {
  leavePage();
  session = null;
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, maxlength: "254" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, maxlength: "256" });
  const error = h("p.status.error", { role: "alert", hidden: !message }, message || "");
  const submit = h("button", { type: "submit" }, "登录");
  const form = h(
    "form.login",
    h("h1", "毕业照片采集 · 管理后台"),
    h("label.field", h("span", "邮箱"), email),
    h("label.field", h("span", "密码"), password),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    let reply;
    try {
      reply = await post("/login", { email: email.value.trim(), password: password.value });
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.code === "rate_limited"
          ? `尝试次数过多，请 ${Math.ceil((err.details && err.details.retry_after_s) || 60)} 秒后再试`
          : err.message;
      error.hidden = false;
      return;
    } finally {
      submit.disabled = false;
    }
    password.value = "";
    startSession(reply.operator);
  });
  document.body.dataset.view = "login";
  replace(app, form);
  email.focus();
}

onUnauthenticated(() => {
  if (session) showLogin("登录已过期，请重新登录");
});

// --- the signed-in shell ---------------------------------------------------------------------------

const main = h("main");

function startSession(operator) {
  session = context(operator);
  const nav = h(
    "nav",
    PAGES.filter(allowed).map((entry) => h("a", { href: `#/${entry.route}`, dataset: { route: entry.route } }, entry.label)),
  );
  const logout = h("button.link", { type: "button" }, "退出");
  logout.addEventListener("click", async () => {
    try {
      await post("/logout");
    } catch (err) {
      // Already signed out on the server: the sign-in form is what follows either way.
    }
    showLogin("");
  });
  const header = h(
    "header.top",
    h("strong", "管理后台"),
    nav,
    h("span.who", `${operator.email}（${ROLE_LABELS[operator.role] || operator.role}${operator.all_schools ? "，全部学校" : `，${operator.schools.join("、")}`}）`),
    logout,
  );
  document.body.dataset.view = "console";
  document.body.dataset.role = operator.role;
  replace(app, header, main);
  route();
}

function route() {
  if (!session) return;
  const name = (location.hash.replace(/^#\/?/, "") || "").split("?")[0];
  const visible = PAGES.filter(allowed);
  const entry = visible.find((p) => p.route === name) || visible.find((p) => p.route === "review") || visible[0];
  if (`#/${entry.route}` !== location.hash) {
    history.replaceState(null, "", `#/${entry.route}`);
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.route === entry.route);
  }
  leavePage();
  const root = h("section.page");
  replace(main, root);
  current = entry.page(root, session) || {};
}

window.addEventListener("hashchange", route);

document.addEventListener("keydown", (event) => {
  if (!session || !current || !current.onKey) return;
  const target = event.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  if (typing) return;
  current.onKey(event);
});

// --- start: an existing session goes straight in ------------------------------------------------------

function showSetPassword(token) {
  leavePage();
  session = null;
  document.body.dataset.view = "set-password";
  replace(
    app,
    setPasswordForm(token, (message) => {
      history.replaceState(null, "", "#/");
      showLogin(message);
    }),
  );
}

(async () => {
  const invite = /^#\/set-password\?token=([A-Za-z0-9_-]{20,128})$/.exec(location.hash);
  if (invite) {
    showSetPassword(invite[1]);
    return;
  }
  let operator;
  try {
    operator = await get("/me");
  } catch (err) {
    showLogin("");
    return;
  }
  startSession(operator);
})();

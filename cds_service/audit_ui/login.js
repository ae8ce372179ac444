// The sign-in page: after a refused sign-in the server redirects to /audit/login?failed=1; the audit
// page sends a browser whose session has ended to /audit/login?expired=1.
const params = new URLSearchParams(window.location.search);
const message = params.get("failed") === "1" ? "login-error" : params.get("expired") === "1" ? "login-expired" : null;
if (message) {
  document.getElementById(message).hidden = false;
  document.getElementById("username").setAttribute("aria-describedby", message);
}

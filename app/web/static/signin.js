// Sign-in: post the token once, keep nothing; the server answers with an HttpOnly session cookie.
"use strict";
document.getElementById("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const input = document.getElementById("token");
  const error = document.getElementById("signin-error");
  const button = form.querySelector("button");
  button.disabled = true;
  error.hidden = true;
  const body = new URLSearchParams({ token: input.value });
  input.value = "";
  try {
    const answer = await fetch("/signin", { method: "POST", body, credentials: "same-origin" });
    if (answer.ok) {
      location.reload();
      return;
    }
    const data = await answer.json().catch(() => ({}));
    error.textContent = data.error || `Sign-in failed (${answer.status})`;
  } catch (failure) {
    error.textContent = "Orderhook did not answer: check that it is running.";
  }
  error.hidden = false;
  button.disabled = false;
  input.focus();
});

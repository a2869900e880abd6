import { byId, hide, show } from "./format.js";
import { currentWho, signIn, signOut, type Who } from "./session.js";

/**
 * The sign-in box in the header: paste a token, see who you are, sign out. `changed` runs
 * after every change, so the page can show or hide what the new role may do.
 */
export function setupSession(changed: () => void): { who: () => Who } {
  const form = byId<HTMLFormElement>("sign-in-form");
  const input = byId<HTMLInputElement>("token-input");
  const error = byId("sign-in-error");
  const signedIn = byId("signed-in");
  const user = byId("session-user");
  const role = byId("session-role");
  const signOutButton = byId<HTMLButtonElement>("sign-out");

  function render(): void {
    const who = currentWho();
    form.hidden = who.role !== "anonymous";
    signedIn.hidden = who.role === "anonymous";
    user.textContent = who.subject;
    role.textContent = who.role;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const problem = signIn(input.value);
    if (problem) {
      show(error, problem);
      return;
    }
    input.value = "";
    hide(error);
    render();
    changed();
  });
  signOutButton.addEventListener("click", () => {
    signOut();
    render();
    changed();
  });
  render();
  return { who: currentWho };
}

// Drives facade's review page in Debian's chromium as an analyst would.
//
//   node review-page.mjs scan-and-review BASE_URL TOKEN IMAGE SCREENSHOT [DECLARED_IMAGE]
//   node review-page.mjs check-kept      BASE_URL TOKEN IMAGE SCREENSHOT
//
// Prints one JSON object (what the page showed) on stdout; exits non-zero when the page
// does not behave. The Rust test (crates/facade-cli/tests/review_page.rs) starts and restarts
// the server around the two phases and checks the printed values against the API.
import { chromium } from "playwright-core";

const [phase, base, token, image, screenshot, declaredImage] = process.argv.slice(2);
const executablePath = process.env.FACADE_CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // This machine has no network beyond localhost: keep chromium from reaching out.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { phase };
try {
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.setDefaultTimeout(60_000);
  await page.goto(base + "/");
  // Without the token the page says so.
  await page.locator("#status").filter({ hasText: "token" }).waitFor();
  await page.fill("#reviewer", "ana");
  await page.locator("#reviewer").dispatchEvent("change");
  await page.fill("#token", token);
  await page.locator("#token").dispatchEvent("change");
  await page.locator("#status").filter({ hasText: "Up to date" }).waitFor();

  const networkCards = page.locator("[data-network]");
  result.networks = await networkCards.count();

  if (phase === "scan-and-review") {
    await page.setInputFiles("#upload", image);
    await page.click("#scan-button");
    await page.locator("#scan-score").waitFor();
    result.score = Number(await page.locator("#scan-score").innerText());
    result.verdict = await page.locator("#scan-verdict").innerText();
    // Dismiss the image (a real photo), with a note.
    const scanCard = page.locator("#scan-result");
    await scanCard.locator("input.note").fill("real NASA portrait");
    await scanCard.locator("button.dismiss").click();
    await page.locator("#status").filter({ hasText: "Recorded: dismiss image:" }).waitFor();
    // Confirm the first flagged network.
    const first = networkCards.first();
    result.network = await first.getAttribute("data-network");
    result.faces_shown = await first.locator("img").count();
    await first.locator("input.note").fill("same links within seconds");
    await first.locator("button.confirm").click();
    await page.locator("#status").filter({ hasText: "Recorded: confirm network:" }).waitFor();
    result.declared_before = await page.locator("#scan-declared").count();
    if (declaredImage) {
      // A file that declares itself AI-generated: the page says so beside the detectors.
      await page.setInputFiles("#upload", declaredImage);
      await page.click("#scan-button");
      await page.locator("#scan-declared").waitFor();
      result.declared = await page.locator("#scan-declared").innerText();
      result.declared_verdict = await page.locator("#scan-verdict").innerText();
    }
  } else {
    await page.locator("#reviews tbody tr").first().waitFor();
  }
  result.reviews = await page.locator("#reviews tbody tr").evaluateAll((rows) =>
    rows.map((row) => Array.from(row.cells).slice(0, 5).map((cell) => cell.textContent)));
  result.network_decision = await networkCards.first().locator(".decision").innerText();
  await page.screenshot({ path: screenshot, fullPage: true });
  result.page_errors = pageErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

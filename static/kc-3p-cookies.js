// keycloak-js third-party cookie check, step 2: tell the parent page
// whether the test cookie set by step 1 came back (the server decided).
window.parent.postMessage(document.documentElement.dataset.result, "*");

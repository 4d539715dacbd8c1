// Shows the error line after a refused sign-in (/login?error=1).
if (new URLSearchParams(location.search).has('error')) {
  document.getElementById('error').hidden = false;
}

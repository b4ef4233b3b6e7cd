// The browser side of amplify-redirect.test.mjs, bundled by esbuild at test time: an app
// page with Amplify v6 Auth and its OAuth listener (the redirect back lands on a fresh
// page load), exposed on window for the test to drive.
import { Amplify } from 'aws-amplify';
import { signInWithRedirect, signOut, fetchAuthSession, getCurrentUser } from 'aws-amplify/auth';
import 'aws-amplify/auth/enable-oauth-listener';

Amplify.configure(window.amplifyConfig);
window.amp = { signInWithRedirect, signOut, fetchAuthSession, getCurrentUser };

// The app's event payloads, declared as with @laravel/echo-react: useEcho infers them by name.
interface Events {
  OrderShipped: { id: number; total: number };
}
